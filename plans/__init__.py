"""Bluesky plans and their sub-plans (generators of messages; no I/O of their own)."""

from .dc import chi_t, full_loop, m_h, mce_field_grid, mce_isotherms
from .safety import mpms3_safe_state
from .sample import Sample

__all__ = ["Sample", "chi_t", "m_h", "mce_isotherms", "mce_field_grid", "full_loop",
           "mpms3_safe_state"]
