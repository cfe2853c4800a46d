"""The blueprint of the EXACT-compatible routes (docs/exact-compat.md)."""

from flask import Blueprint

exact_compat = Blueprint("exact_compat", __name__)
