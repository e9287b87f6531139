"""Privacy: keys and keyed tokens, identifiers, operators, disclosure control, vault, leak scans."""
