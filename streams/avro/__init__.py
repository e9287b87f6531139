"""Avro: the Confluent wire-format codec, the schema catalogue and its tagged fields."""
