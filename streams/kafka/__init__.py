"""Kafka plumbing: producer, readers, offsets, admin, ACL plan, security, the embedded broker."""
