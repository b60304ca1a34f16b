"""The operations served on operator.sock, one module per area; table.py merges them."""
