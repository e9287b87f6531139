"""The pure views engine: person profiles, area counts, factors, view Avro values, the PostgreSQL sink."""
