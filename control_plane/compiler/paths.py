"""The API paths the gateway serves, and the reply to every other path."""

from __future__ import annotations

from typing import Any

from control_plane.compiler.model_lists import MODELS_PATH
from ext_proc.contract import ClientApi

# The client APIs routed today; each needs a translator for every backend kind it reaches.
SERVED_APIS = (ClientApi.OPENAI_CHAT, ClientApi.OPENAI_EMBEDDINGS, ClientApi.ANTHROPIC_MESSAGES)

UNKNOWN_PATH_MESSAGE = ("Unknown path. This gateway serves "
                        + ", ".join(api.path for api in SERVED_APIS) + f" and {MODELS_PATH}.")


def unknown_path_route() -> dict[str, Any]:
    return {"match": {"prefix": "/"}, "direct_response": {
        "status": 404, "body": {"inline_string": UNKNOWN_PATH_MESSAGE}}}


def seconds(value: float) -> str:
    """A protobuf Duration in its JSON form."""
    return f"{value:.3f}s"
