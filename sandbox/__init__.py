"""A local Airtable-compatible API server with seeded data, for tests and demos."""

from sandbox.base import SandboxBase
from sandbox.clock import CLOCK, SandboxClock
from sandbox.config import SandboxConfig, SandboxStats
from sandbox.generate import FIELD_TYPES, build_base, hostile_table_names
from sandbox.hostile import build_hostile_base, rename_and_retype
from sandbox.mixed import build_mixed_base
from sandbox.model import SandboxField, SandboxTable
from sandbox.server import Sandbox, run_sandbox, serve_forever

__all__ = [
    "CLOCK",
    "FIELD_TYPES",
    "Sandbox",
    "SandboxBase",
    "SandboxClock",
    "SandboxConfig",
    "SandboxField",
    "SandboxStats",
    "SandboxTable",
    "build_base",
    "build_hostile_base",
    "build_mixed_base",
    "hostile_table_names",
    "rename_and_retype",
    "run_sandbox",
    "serve_forever",
]
