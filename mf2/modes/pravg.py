"""PrAvg: a fixed number L of consecutive exposures, the middle one the sharp target."""

from __future__ import annotations

from mf2.blur.windows import Window, plan_pravg
from mf2.faces.series import FaceSeries
from mf2.modes.base import Mode, Plan, PlanContext
from mf2.modes.config import SimulateConfig


class PrAvg(Mode):
    name = "pravg"

    def validate(self, cfg: SimulateConfig) -> None:
        cfg.pravg.validate()

    def plan(self, ctx: PlanContext, ser: FaceSeries) -> Plan:
        cfg = ctx.cfg
        windows, stats = plan_pravg(
            ser.landmarks,
            ser.usable,
            ser.is_duplicate,
            cfg.pravg.L,
            cfg.stride,
            cfg.margin,
            cfg.skip_duplicates,
            ser.run,
            ser.reason,
            ctx.frame_size,
        )
        return Plan(windows, [{} for _ in windows], stats.skipped_face_lost, {"skipped": stats.skipped}, ser)

    def pair_id(self, video_id: str, w: Window, extra: dict, cfg: SimulateConfig) -> str:
        return f"{video_id}_pravg_L{cfg.pravg.L}_c{w.center:06d}"

    def label(self, row: dict) -> str:
        return f"PrAvg {row['L']}"

    def job_name(self, job: dict) -> str:
        return f"pravg_L{job['L']}"

    def min_exposures(self, cfg: SimulateConfig) -> tuple[int, str]:
        return cfg.pravg.L, "--L"


MODE = PrAvg()
