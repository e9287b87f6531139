"""The partner side: the publisher SDK, CSV/JSONL extracts and the simulator."""
