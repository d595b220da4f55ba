"""Run configuration: a TOML file validated into ``RunConfig``, errors naming file and key.

    name = "toy-default"
    seeds = [0, 1]
    metrics = ["psnr", "ssim", "motion_fidelity"]
    device = "auto"

    [clips]
    set = "shapes"          # a registered clip set
    limit = 4               # keep the first N clips (after `ids`)
    options = { size = 64 }

    [[methods]]
    name = "motionclone"
    params = { mask = ["plain", "primary"], k = 1 }   # lists expand (cartesian product)

    [metric_options.motion_fidelity]
    tracker = "lk"
"""
from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from motiongrid.bench.errors import UserError
from motiongrid.bench.files import read_text


class ConfigError(UserError, ValueError):
    """A config that cannot run; the message names the file, the key and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClipsConfig(_Strict):
    set: str = "shapes"
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(default=None, ge=1)
    ids: list[str] | None = None


class MethodConfig(_Strict):
    name: str
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


# A seed is stored in SQLite (signed 64-bit) and seeds torch/numpy generators (non-negative).
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]


class RunConfig(_Strict):
    name: str = "motiongrid"
    clips: ClipsConfig = Field(default_factory=ClipsConfig)
    methods: list[MethodConfig] = Field(min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    metrics: list[str] = Field(default_factory=lambda: ["psnr", "ssim", "motion_fidelity"])
    metric_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    executor: Literal["local", "ray"] = "local"   # where cells run; `--executor` overrides it
    out: str | None = None


def _format_validation(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid config"]
    for err in exc.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        lines.append(f"  {loc or '<top level>'}: {msg}")
    if any(e["type"] == "extra_forbidden" for e in exc.errors()):
        lines.append(f"  allowed top-level keys: {', '.join(RunConfig.model_fields)}")
    return "\n".join(lines)


def parse_config(data: dict, source: str = "<config>") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(source, exc)) from None


def load_config(path: str | Path | None) -> tuple[RunConfig, str]:
    """Load ``path`` (or the embedded default when None); returns (config, source name)."""
    if path is None:
        text = resources.files("motiongrid.bench").joinpath("configs/default.toml").read_text()
        source = "bench/configs/default.toml (embedded default)"
    else:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        text = read_text(p)
        source = str(p)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    return parse_config(data, source), source
