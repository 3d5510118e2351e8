"""mf2 from Python: the commands as functions, for notebooks and scripts (issue 32).

Each function takes what its command takes, with the same names and defaults (the settings of
``simulate`` are the names in ``mf2.params``, as in recipes: ``mode``, ``L``, ``out_size``,
``direction``, ``seed``...) but two, chosen for a notebook on a laptop: ``simulate`` runs in
this process (``workers=0``; None picks as the command does) and ``train`` starts from the
``small`` preset (the command's default is ``paper``, for a GPU). Each returns the summary the
command prints, as a typed object::

    import mf2.api as mf2

    run = mf2.simulate("runs/pravg7", videos="clips/", mode="pravg", L=7, out_size=128)
    print(run.n_pairs_total, run.pairs_path)
    report = mf2.verify(run.pairs_path)
    assert report.ok, report.problems
    ds = mf2.load(run.pairs_path)          # the manifest as a Dataset: ds.table is Arrow
    df = ds.table.to_pandas()

Nothing here prints: messages a command would show go to ``echo`` (a callable taking one line;
by default they are dropped), failures raise ``mf2.errors.UsageError`` (a wrong argument) or
``mf2.errors.InputError`` (an input that cannot be used), and per-video failures are in the
summary, as in the CLI's ``--json`` output.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from mf2.errors import UsageError, check_writable_dir
from mf2.params import default

if TYPE_CHECKING:
    from mf2.dataset.manifest import Dataset
    from mf2.evaluate.run import Evaluation
    from mf2.pipeline.summary import RunSummary
    from mf2.restore.deblur import DeblurResult
    from mf2.share.export import ExportSummary
    from mf2.share.materialize import MaterializeSummary
    from mf2.share.verify import VerifyReport
    from mf2.modes.config import SimulateConfig
    from mf2.train.trainer import StageResult
    from mf2.video.filters import VideoFilter

__all__ = ["deblur", "evaluate", "export", "load", "materialize", "simulate", "simulate_config", "train", "verify"]

Echo = Callable[[str], None]


def _quiet(line: str) -> None:
    """The default ``echo``: a notebook asked for a result, not a log."""


def simulate_config(**settings: Any) -> "tuple[SimulateConfig, VideoFilter]":
    """The ``SimulateConfig`` that keyword settings describe (names of ``mf2.params``'s simulate,
    landmark and filter tables; anything else is refused), validated, and the video filters. A
    setting of another mode is refused unless it holds its default, as in a recipe (the CLI, which
    knows what was typed, refuses any typed one first)."""
    from mf2.faces.select import LandmarkConfig
    from mf2.params import FILTERS, LANDMARKS, SIMULATE
    from mf2.modes.config import simulate_config as from_values
    from mf2.video.filters import VideoFilter

    known = {p.key: p for p in (*SIMULATE, *LANDMARKS, *FILTERS)}
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise UsageError(f"{unknown[0]}: not a simulate setting (see mf2 simulate --help)")
    mode = settings.get("mode", known["mode"].default)
    for key in settings:
        p = known[key]
        if p in SIMULATE and not p.applies(mode) and settings[key] != p.default:
            raise UsageError(f"{key}={settings[key]!r}: applies to mode {' or '.join(p.modes or ())}, not {mode}")
    lm = LandmarkConfig(**{p.target: settings.get(p.key, p.default) for p in LANDMARKS})
    filters = VideoFilter(**{p.target: settings.get(p.key, p.default) for p in FILTERS})
    filters.validate()
    cfg = from_values({k: v for k, v in settings.items() if known[k] in SIMULATE}, lm)
    cfg.validate()
    return cfg, filters


def simulate(out: str | Path, videos: str | Path | None = None, *, images: str | Path | None = None,
             fps: float | None = None, workers: int | None = 0, scheduler: str | None = None,
             retry_failed: bool = False, replace: bool = False, contact_sheet: bool = False,
             echo: Echo = _quiet, config: "SimulateConfig | None" = None, filters: "VideoFilter | None" = None,
             **settings: Any) -> "RunSummary":
    """``mf2 simulate``: blurry/sharp pairs of ``videos`` (a file, a folder, a fetch table) or
    ``images`` (face photos) into the dataset folder ``out``; resumable, as the command is.
    ``workers``: 0 runs in this process (the default here: a notebook rarely wants a cluster),
    None picks as the CLI does. ``config`` (with ``filters``): a ``SimulateConfig`` made
    already, in place of ``settings``. Returns the run's ``RunSummary`` (``pairs_path``,
    ``n_pairs_total``, ``failures``...)."""
    from mf2.faces.select import check_backend
    from mf2.pipeline.execute import run_simulate
    from mf2.pipeline.runner import default_workers, make_runner
    from mf2.sources import gather_sources
    from mf2.video import require_ffmpeg

    if config is not None and settings:
        raise UsageError(f"simulate: config and settings ({', '.join(sorted(settings))}) together")
    cfg, filters = (config, filters) if config is not None else simulate_config(**settings)
    if videos is not None:
        require_ffmpeg()
    same: list = []
    sources = gather_sources(None if videos is None else str(videos), None if images is None else str(images),
                             fps, cfg.mode, same)
    for skipped, kept in same:
        echo(f"{skipped}: the same file as {kept}; taken once")
    folder = check_writable_dir(Path(out))
    n = _workers(workers, scheduler, len(sources), default_workers, echo)
    with make_runner(n, scheduler, check_backend(cfg.landmarks) == "fan", echo) as runner:
        summary = run_simulate(sources, folder, cfg, runner=runner, retry_failed=retry_failed, replace=replace,
                               filters=filters)
    if contact_sheet:
        from mf2.viz import contact_sheet as draw

        sheet = draw(folder)
        if sheet:
            echo(f"contact sheet: {sheet}")
    return summary


def _workers(workers: int | None, scheduler: str | None, n_sources: int, default: Callable[[], int],
             echo: Echo) -> int:
    n = default() if workers is None else workers
    n = min(n, max(1, n_sources)) if n > 0 else 0
    if workers is None and scheduler is None and n == 1:
        # One source is one task: a cluster would add its start-up (~3.5 s wall, ~4 s CPU:
        # issue 35) and run nothing beside it. An explicit workers=1 still gets one.
        echo("dask: one source: running in this process (--workers 1 for a worker process)")
        return 0
    return n


def load(dataset: str | Path) -> "Dataset":
    """A dataset folder or manifest as a ``Dataset`` (``table``: the pairs as Arrow, upgraded to
    the current schema; ``root``: where its relative image paths start)."""
    from mf2.dataset.manifest import load as load_dataset

    return load_dataset(dataset)


def verify(dataset: str | Path, hashes: bool = True) -> "VerifyReport":
    """``mf2 verify``: every image present and unchanged, the manifest consistent."""
    from mf2.share.verify import verify as run

    return run(dataset, hashes)


def export(dataset: str | Path, out: str | Path, images: bool = True, splits: tuple[str, ...] = (),
           link: bool = False) -> "ExportSummary":
    """``mf2 export``: a copy to share (with images: a dataset folder; without: one .parquet)."""
    from mf2.share.export import export as run

    return run(dataset, Path(out), images, splits, link)


def materialize(manifest: str | Path, videos: str | Path, out: str | Path,
                keep_mismatched: bool = False) -> "MaterializeSummary":
    """``mf2 materialize``: rebuild a shared manifest's pixels from your copies of its videos."""
    from mf2.share.materialize import materialize as run
    from mf2.video import require_ffmpeg

    require_ffmpeg()
    folder = check_writable_dir(Path(out))
    return run(manifest, videos, folder, keep_mismatched=keep_mismatched)


def train(datasets: Sequence[str | Path], out: str | Path, config: str = "small", stage: str = "all",
          max_steps: int | None = None, device: str = "auto", hg_pairs: Sequence[str | Path] | None = None,
          threads: int | None = None, restart_cgan: bool = False, echo: Echo = _quiet
          ) -> "dict[str, StageResult]":
    """``mf2 train``: the hourglass, then the cGAN, into the resumable run folder ``out``
    (``out/model.pt`` is the model ``deblur`` takes). ``config``: a preset or a YAML file."""
    from mf2.models.config import load_config
    from mf2.train.trainer import train as run

    if not datasets:
        raise UsageError("mf2 train: give at least one pair dataset (mf2 train DATASET ... --out RUN)")
    if max_steps is not None and max_steps < 1:
        raise UsageError(f"--max-steps {max_steps}: must be >= 1")
    cfg = load_config(config)
    folder = check_writable_dir(Path(out))
    return run([str(d) for d in datasets], folder, cfg, stage, max_steps, device, echo=echo,
               restart_cgan=restart_cgan, hg_manifests=[str(h) for h in hg_pairs] if hg_pairs else None,
               threads=threads)


def deblur(inputs: Sequence[str | Path], model: str | Path, out: str | Path, mode: str = "auto",
           margin: float = default("margin"), device: str = "auto", reference: int | None = None) -> "DeblurResult":
    """``mf2 deblur``: restore face crops, photos or videos with a trained ``model.pt``;
    ``reference``: a sharp frame of a video whose identity every restored frame is traced
    against."""
    from mf2.restore.deblur import deblur as run
    from mf2.video import require_ffmpeg

    require_ffmpeg()
    folder = check_writable_dir(Path(out))
    return run([str(i) for i in inputs], str(model), folder, mode, margin, device, reference)


def evaluate(datasets: Sequence[str | Path], models: Sequence[str | Path] = (),
             hourglasses: Sequence[str | Path] = (), restored: Sequence[str] = (), **settings: Any) -> "Evaluation":
    """``mf2 evaluate``'s scores (SSIM, PSNR, landmark AUC/failure rate, identity) on the
    datasets' pairs, of Blurred, the Oracle, each ``models`` (model.pt, the stages it holds),
    each of ``hourglasses`` (a model's hourglass alone) and each ``restored`` folder
    (``NAME=FOLDER``, images mirroring the dataset). ``settings``: ``EvaluateConfig``'s fields
    (``limit``, ``landmarks``, ``identity``...)."""
    from mf2.evaluate.methods import Method, parse_checkpoint, parse_restored
    from mf2.evaluate.run import EvaluateConfig, evaluate as run

    methods = [Method("Blurred", "blurred"), Method("Oracle", "oracle")] + [parse_restored(r) for r in restored] \
        + [parse_checkpoint(str(c)) for c in models] + [parse_checkpoint(str(c), "hg") for c in hourglasses]
    return run([str(d) for d in datasets], methods, EvaluateConfig(**settings))
