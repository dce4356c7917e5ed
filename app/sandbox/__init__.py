"""A local Airtable-compatible API server with seeded data, for tests and demos."""

from app.sandbox.generate import FIELD_TYPES, build_base, hostile_table_names
from app.sandbox.model import SandboxBase, SandboxField, SandboxTable

__all__ = [
    "FIELD_TYPES",
    "SandboxBase",
    "SandboxField",
    "SandboxTable",
    "build_base",
    "hostile_table_names",
]
