"""Check a Ray cluster address before ``ray.init`` joins it, so each way it can be wrong is one
error, within seconds, that names the address and the fix.

``ray.init`` retries a bad address for tens of seconds, prints the gRPC warnings of every try,
and ends in "Failed to connect" whatever the cause: nothing listening, a service that is not Ray,
or a head that refuses this process's authentication token (Ray >= 2.52 token authentication,
on by default for ``ray start --head`` once a token exists). Here one TCP connection tells the
first case, one gRPC call to the head's GCS (the service ``ray start --head --port`` opens) the
other two; the call goes through Ray's own channel helper, so it carries exactly the token
``ray.init`` would send (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
``~/.ray/auth_token``).
"""
from __future__ import annotations

import os
import socket

from motiongrid.bench.errors import UserError

TIMEOUT_S = 5.0   # each step; a live head answers in milliseconds
FIX_ADDRESS = "or fix --ray-address / RAY_ADDRESS"
TOKEN_FIX = ("put the cluster's token (`ray get-auth-token` on the head prints it) in ~/.ray/auth_token, "
             "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")


class RayUnavailable(UserError, RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


class RayAuthError(RayUnavailable):
    """The cluster is there and refuses this process's authentication."""


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) -> (host, port), or the error that says what is expected."""
    if address.startswith("ray://"):
        raise RayUnavailable(
            f"Ray address {address}: a Ray Client address (ray://), which motiongrid does not use: its driver "
            f"joins the cluster itself; give the head's HOST:PORT (the port of `ray start --head --port`, "
            f"6379 by default) and run motiongrid on a machine that reaches it")
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayUnavailable(f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, the port of "
                             f"`ray start --head --port`), 'auto' or 'local'; {FIX_ADDRESS}")
    return host.strip("[]"), int(port)


def check_address(address: str) -> None:
    """Raise RayUnavailable (RayAuthError for authentication) unless a Ray head that accepts this
    process answers at ``address``."""
    host, port = split_address(address)
    try:
        socket.create_connection((host, port), timeout=TIMEOUT_S).close()
    except ConnectionRefusedError:
        raise RayUnavailable(f"nothing listens at Ray address {address} (connection refused): start the head "
                             f"there with `ray start --head --port {port}`, {FIX_ADDRESS}") from None
    except OSError as exc:   # unknown host, no route, a firewall that drops (timeout)
        reason = f"no answer within {TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else exc.strerror or exc
        raise RayUnavailable(f"cannot reach Ray address {address} ({reason}): check the host and that the port "
                             f"is open to this machine, {FIX_ADDRESS}") from None
    try:
        import grpc
        from ray._private.grpc_utils import init_grpc_channel
        from ray._raylet import AuthenticationMode, AuthenticationTokenLoader, get_authentication_mode
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:   # a Ray whose internals moved: ray.init alone still connects, only slower to fail
        return
    from ray.exceptions import AuthenticationError

    token_mode = get_authentication_mode() == AuthenticationMode.TOKEN
    try:
        has_token = not token_mode or AuthenticationTokenLoader.instance().has_token()
    except AuthenticationError:   # how Ray says "token mode and no token anywhere"
        has_token = False
    if not has_token:
        raise RayAuthError(f"RAY_AUTH_MODE=token but no Ray authentication token is set on this machine: "
                           f"{TOKEN_FIX}")
    not_ray = (f"something listens at Ray address {address} but it is not a Ray head (%s): give the port of "
               f"`ray start --head --port` (6379 by default; 8265 is the dashboard, 10001 Ray Client), {FIX_ADDRESS}")
    channel = init_grpc_channel(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)
        except grpc.FutureTimeoutError:
            raise RayUnavailable(not_ray % f"no gRPC answer within {TIMEOUT_S:g} s") from None
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise RayUnavailable(not_ray % f"{exc.code().name}: {exc.details()}") from None
            if not token_mode:
                raise RayAuthError(f"the Ray cluster at {address} requires token authentication and this process "
                                   f"sends no token: export RAY_AUTH_MODE=token and {TOKEN_FIX}") from None
            raise RayAuthError(f"the Ray cluster at {address} rejected this process's authentication token "
                               f"(from {token_source()}): {TOKEN_FIX}") from None
    finally:
        channel.close()


def token_source() -> str:
    """Where Ray reads the token from, in its order of precedence."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH={os.environ['RAY_AUTH_TOKEN_PATH']}"
    return os.path.join("~", ".ray", "auth_token")
