"""The DuckDB warehouse: idempotent loads, analytics tables, and the CRM update file."""
