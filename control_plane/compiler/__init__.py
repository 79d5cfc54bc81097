"""Policy in, snapshot out: the translation from routing policy to Envoy resources."""

from control_plane.compiler.compile import compile_policy
from control_plane.compiler.settings import GatewaySettings

__all__ = ["GatewaySettings", "compile_policy"]
