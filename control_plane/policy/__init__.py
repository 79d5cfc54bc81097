"""The routing policy: its models, its loader and its errors."""

from control_plane.policy.errors import PolicyError, PolicyIssue
from control_plane.policy.loader import load_documents, load_path
from control_plane.policy.models import Policy

__all__ = ["Policy", "PolicyError", "PolicyIssue", "load_documents", "load_path"]
