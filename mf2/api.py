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
from mf2.params import DEBLUR, EXPORT, SPLIT, TRAIN, default

if TYPE_CHECKING:
    from mf2.dataset.manifest import Dataset
    from mf2.evaluate.run import Evaluation
    from mf2.fetch.run import FetchSummary
    from mf2.modes.config import SimulateConfig
    from mf2.pipeline.run import PipelineSummary
    from mf2.pipeline.summary import RunSummary
    from mf2.restore.deblur import DeblurResult
    from mf2.share.export import ExportSummary
    from mf2.share.filter import FilterSummary
    from mf2.share.hub import HubExport
    from mf2.share.materialize import MaterializeSummary
    from mf2.share.remove import RemoveSummary
    from mf2.share.split import SplitSummary
    from mf2.share.verify import VerifyReport
    from mf2.stats import StatsReport
    from mf2.train.trainer import StageResult
    from mf2.video import VideoInfo
    from mf2.video.filters import VideoFilter

__all__ = [
    "deblur",
    "evaluate",
    "export",
    "fetch",
    "filter_pairs",
    "load",
    "materialize",
    "probe",
    "remove",
    "run",
    "simulate",
    "simulate_config",
    "split",
    "stats",
    "train",
    "verify",
]

Echo = Callable[[str], None]


def _quiet(line: str) -> None:
    """The default ``echo``: a notebook asked for a result, not a log."""


def simulate_config(**settings: Any) -> "tuple[SimulateConfig, VideoFilter]":
    """The ``SimulateConfig`` that keyword settings describe (names of ``mf2.params``'s simulate,
    landmark and filter tables; anything else is refused), validated, and the video filters. A
    setting of another mode is refused unless it holds its default, as in a recipe (the CLI, which
    knows what was typed, refuses any typed one first)."""
    from mf2.faces.select import LandmarkConfig
    from mf2.modes.config import simulate_config as from_values
    from mf2.params import FILTERS, LANDMARKS, SIMULATE
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


def simulate(
    out: str | Path,
    videos: str | Path | None = None,
    *,
    images: str | Path | None = None,
    fps: float | None = None,
    workers: int | None = 0,
    scheduler: str | None = None,
    retry_failed: bool = False,
    replace: bool = False,
    contact_sheet: bool = False,
    echo: Echo = _quiet,
    config: "SimulateConfig | None" = None,
    filters: "VideoFilter | None" = None,
    **settings: Any,
) -> "RunSummary":
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
    sources = gather_sources(
        None if videos is None else str(videos), None if images is None else str(images), fps, cfg.mode, same
    )
    for skipped, kept in same:
        echo(f"{skipped}: the same file as {kept}; taken once")
    folder = check_writable_dir(Path(out))
    n = _workers(workers, scheduler, len(sources), default_workers, echo)
    with make_runner(n, scheduler, check_backend(cfg.landmarks) == "fan", echo) as runner:
        summary = run_simulate(
            sources, folder, cfg, runner=runner, retry_failed=retry_failed, replace=replace, filters=filters
        )
    if contact_sheet:
        from mf2.viz import contact_sheet as draw

        sheet = draw(folder)
        if sheet:
            echo(f"contact sheet: {sheet}")
    return summary


def _workers(workers: int | None, scheduler: str | None, n_sources: int, default: Callable[[], int], echo: Echo) -> int:
    n = default() if workers is None else workers
    n = min(n, max(1, n_sources)) if n > 0 else 0
    if workers is None and scheduler is None and n == 1:
        # One source is one task: a cluster would add its start-up (~3.5 s wall, ~4 s CPU:
        # issue 35) and run nothing beside it. An explicit workers=1 still gets one.
        echo("dask: one source: running in this process (--workers 1 for a worker process)")
        return 0
    return n


def probe(video: str | Path, fps: float | None = None) -> "VideoInfo":
    """``mf2 probe``: what ffprobe says of a video (exact frame rate, rotation, the stream read,
    VFR); ``fps`` for a folder of numbered frames."""
    from mf2.video import probe as probe_video
    from mf2.video import require_ffmpeg

    require_ffmpeg()
    return probe_video(video, fps)


def stats(dataset: str | Path) -> "StatsReport":
    """``mf2 stats``: the dataset's summary (pairs per mode, L, stop reasons, motion, pairs per
    video), with its plots written to DATASET/stats/."""
    from mf2.stats import run_stats

    return run_stats(Path(dataset))


def load(dataset: str | Path) -> "Dataset":
    """A dataset folder or manifest as a ``Dataset`` (``table``: the pairs as Arrow, upgraded to
    the current schema; ``root``: where its relative image paths start)."""
    from mf2.dataset.manifest import load as load_dataset

    return load_dataset(dataset)


def verify(dataset: str | Path, hashes: bool = True) -> "VerifyReport":
    """``mf2 verify``: every image present and unchanged, the manifest consistent."""
    from mf2.share.verify import verify as run

    return run(dataset, hashes)


def export(
    dataset: str | Path,
    out: str | Path,
    images: bool = True,
    splits: Sequence[str] = (),
    link: bool = False,
    format: str = default("format", EXPORT),
    shard_pairs: int = default("shard_pairs", EXPORT),
) -> "ExportSummary | HubExport":
    """``mf2 export``: a copy to share. ``format="folder"``: a dataset folder (with images),
    or one .parquet without them (``images=False``; ``link``: hard links, not copies); ``"hf"``
    or ``"webdataset"``: shards of ``shard_pairs`` pairs with a dataset card (a ``HubExport``)."""
    if format not in ("folder", "hf", "webdataset"):
        raise UsageError(f"--format {format!r}: expected folder, hf or webdataset")
    if format != "folder" and (not images or link):
        raise UsageError(f"--format {format}: {'--no-images' if not images else '--link'} applies to --format folder")
    check_writable_dir(Path(out).parent if not images else Path(out), "--out")
    if format == "folder":
        from mf2.share.export import export as run

        return run(dataset, Path(out), images, tuple(splits), link)
    from mf2.share.hub import export_hf, export_webdataset

    return (export_hf if format == "hf" else export_webdataset)(dataset, Path(out), tuple(splits), shard_pairs)


def materialize(
    manifest: str | Path, videos: str | Path, out: str | Path, keep_mismatched: bool = False
) -> "MaterializeSummary":
    """``mf2 materialize``: rebuild a shared manifest's pixels from your copies of its videos."""
    from mf2.share.materialize import materialize as run
    from mf2.video import require_ffmpeg

    require_ffmpeg()
    folder = check_writable_dir(Path(out))
    return run(manifest, videos, folder, keep_mismatched=keep_mismatched)


def train(
    datasets: Sequence[str | Path],
    out: str | Path,
    config: str = "small",  # the command's is "paper" (a GPU); a notebook on a laptop wants this one
    stage: str = default("stage", TRAIN),
    max_steps: int | None = default("max_steps", TRAIN),
    device: str = default("device", TRAIN),
    hg_pairs: Sequence[str | Path] | None = None,
    threads: int | None = default("threads", TRAIN),
    restart_cgan: bool = False,
    echo: Echo = _quiet,
    gate_pairs: Sequence[str | Path] | None = None,
) -> "dict[str, StageResult]":
    """``mf2 train``: the hourglass, then the cGAN, into the resumable run folder ``out``
    (``out/model.pt`` is the model ``deblur`` takes). ``config``: a preset or a YAML file.
    ``gate_pairs``: the pairs the blur gate learns from, when not the hourglass's."""
    from mf2.models.config import load_config
    from mf2.train.loop import train as run

    if not datasets:
        raise UsageError("mf2 train: give at least one pair dataset (mf2 train DATASET ... --out RUN)")
    if max_steps is not None and max_steps < 1:
        raise UsageError(f"--max-steps {max_steps}: must be >= 1")
    cfg = load_config(config)
    folder = check_writable_dir(Path(out))
    return run(
        [str(d) for d in datasets],
        folder,
        cfg,
        stage,
        max_steps,
        device,
        echo=echo,
        restart_cgan=restart_cgan,
        hg_manifests=[str(h) for h in hg_pairs] if hg_pairs else None,
        threads=threads,
        gate_manifests=[str(g) for g in gate_pairs] if gate_pairs else None,
    )


def deblur(
    inputs: Sequence[str | Path],
    model: str | Path,
    out: str | Path,
    mode: str = default("mode", DEBLUR),
    margin: float = default("margin"),
    device: str = default("device", DEBLUR),
    reference: int | None = default("reference", DEBLUR),
    ensemble: str = default("ensemble", DEBLUR),
) -> "DeblurResult":
    """``mf2 deblur``: restore face crops, photos or videos with a trained ``model.pt``;
    ``reference``: a sharp frame of a video whose identity every restored frame is traced
    against; ``ensemble``: ``flip`` (each face also restored mirrored, the two averaged) or
    ``none``."""
    from mf2.restore.deblur import deblur as run
    from mf2.video import require_ffmpeg

    require_ffmpeg()
    folder = check_writable_dir(Path(out))
    return run([str(i) for i in inputs], str(model), folder, mode, margin, device, reference, ensemble)


def evaluate(
    datasets: Sequence[str | Path] = (),
    models: Sequence[str | Path] = (),
    hourglasses: Sequence[str | Path] = (),
    restored: Sequence[str] = (),
    *,
    stills: str | Path | None = None,
    out: str | Path | None = None,
    kernel_sizes: Sequence[int] = (default("synthetic.kernel_size"),),
    seed: int = default("synthetic.seed"),
    progress: Callable[[int], None] | None = None,
    echo: Echo = _quiet,
    **settings: Any,
) -> "Evaluation":
    """``mf2 evaluate``'s scores (SSIM, PSNR, landmark AUC/failure rate, identity) on the
    datasets' pairs, of Blurred, the Oracle, each ``models`` (model.pt, the stages it holds),
    each of ``hourglasses`` (a model's hourglass alone) and each ``restored`` folder
    (``NAME=FOLDER``, images mirroring the dataset). ``stills``: annotated photos blurred with
    ``kernel_sizes`` (the paper's Table 5 setting). ``out``: the report folder (report.md,
    report.json, CSVs; index.html with ``html=True``), written when given. ``settings``:
    ``EvaluateConfig``'s fields (``limit``, ``landmarks``, ``identity``, ``gt``, ``html``...)."""
    from mf2.evaluate.methods import Method, parse_checkpoint, parse_restored
    from mf2.evaluate.run import EvaluateConfig
    from mf2.evaluate.run import evaluate as run_evaluate

    if not datasets and not stills:
        raise UsageError("mf2 evaluate: give a pair dataset (mf2 evaluate DATASET ...) and/or --stills DIR")
    cfg = EvaluateConfig(**settings)
    cfg.validate()
    methods = (
        [Method("Blurred", "blurred"), Method("Oracle", "oracle")]
        + [parse_restored(r) for r in restored]
        + [parse_checkpoint(str(c)) for c in models]
        + [parse_checkpoint(str(c), "hg") for c in hourglasses]
    )
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise UsageError(f"method names must be distinct: {names}")
    manifests = [str(d) for d in datasets]
    report_dir = None if out is None else check_writable_dir(Path(out))
    if stills:
        from mf2.evaluate.stills import StillsConfig, build_stills

        if report_dir is None:
            raise UsageError("stills: give out too (the blurred stills are written into OUT/stills)")
        manifest, skipped = build_stills(
            Path(stills), report_dir / "stills", StillsConfig(kernel_sizes=tuple(kernel_sizes), seed=seed)
        )
        for line in skipped:
            echo(f"skipped: {line}")
        manifests.append(str(manifest))
    ev = run_evaluate(manifests, methods, cfg, progress)
    if report_dir is not None:
        from mf2.evaluate.report import write_report

        ev.report_files = write_report(ev, report_dir)
    return ev


def split(
    dataset: str | Path,
    by: str = default("by", SPLIT),
    ratios: str = default("ratios", SPLIT),
    seed: int = default("seed", SPLIT),
    identities: str | Path | None = None,
) -> "SplitSummary":
    """``mf2 split``: every pair assigned train/val/test so that no person (``by="identity"``)
    or video is in two splits, deterministically (a hash of seed and group, not a shuffle).
    ``ratios``: names and weights of groups; ``identities``: a CSV or fetch table filling the
    identity column first. The manifest is rewritten in place, atomically."""
    from mf2.share.split import SplitConfig, parse_ratios, split_dataset

    return split_dataset(dataset, SplitConfig(parse_ratios(ratios), seed, by), identities)


def filter_pairs(dataset: str | Path, out: str | Path, **rules: float) -> "FilterSummary":
    """``mf2 filter``: the pairs that pass the pair filters (``min_target_sharpness``,
    ``min_target_sharpness_abs``, ``min_blur``: mf2.params) as a new dataset in ``out``, its
    PNGs hard links to the source's."""
    from mf2.params import PAIR_FILTERS
    from mf2.share.filter import PairFilter, filter_dataset

    unknown = sorted(set(rules) - set(PAIR_FILTERS))
    if unknown:
        raise UsageError(f"{unknown[0]}: not a pair filter (expected {', '.join(PAIR_FILTERS)})")
    folder = check_writable_dir(Path(out), "--out")
    return filter_dataset(dataset, folder, PairFilter(**rules))


def remove(dataset: str | Path, video_ids: Sequence[str], reason: str = "") -> "RemoveSummary":
    """``mf2 remove``: the videos' pairs, images and cached tables taken out of a dataset, and
    the takedown remembered (removed.parquet) so no later run rebuilds them."""
    from mf2.share.remove import remove as run_remove

    if not video_ids:
        raise UsageError("mf2 remove: give at least one video id (--video-id)")
    return run_remove(dataset, list(video_ids), reason)


def fetch(
    manifest: str | Path,
    out: str | Path,
    *,
    cookies: str | Path | None = None,
    retry_failed: bool = False,
    scheduler: str | None = None,
    progress: Callable[[Any, dict], None] | None = None,
    **settings: Any,
) -> "FetchSummary":
    """``mf2 fetch``: download (yt-dlp) or copy the videos a manifest CSV lists into
    ``out/videos`` and write ``out/fetch.parquet``; resumable. ``settings``: mf2.params's
    fetch table (``max_height``, ``downloads``, ``retries``...) and video filters
    (``min_frames``, ``min_fps``, ``min_height``). ``scheduler``: a Dask cluster's address
    to download on its workers. ``progress(row, result)`` hears of each video."""
    from mf2.builtin import resolve
    from mf2.fetch.download import FetchConfig
    from mf2.fetch.manifest import read_manifest
    from mf2.fetch.run import run_fetch
    from mf2.params import FETCH, FILTERS
    from mf2.video import require_ffmpeg
    from mf2.video.filters import VideoFilter

    filter_keys = {p.key: p for p in FILTERS if p.key != "min_face"}  # faces are found later
    known = {p.key: p for p in FETCH}
    unknown = sorted(set(settings) - set(known) - set(filter_keys))
    if unknown:
        raise UsageError(f"{unknown[0]}: not a fetch setting (see mf2 fetch --help)")
    cfg = FetchConfig(
        cookies=None if cookies is None else str(cookies), **{p.target: settings.get(p.key, p.default) for p in FETCH}
    )
    cfg.validate()
    filters = VideoFilter(**{p.target: settings.get(p.key, p.default) for p in filter_keys.values()})
    filters.validate()
    manifest = resolve("manifests", manifest)
    require_ffmpeg()
    read_manifest(manifest)  # a bad manifest is named before out is touched
    folder = check_writable_dir(Path(out))
    if scheduler and scheduler != "synchronous":
        from mf2.pipeline.runner import make_runner

        with make_runner(None, scheduler) as runner:
            return run_fetch(manifest, folder, cfg, retry_failed, progress=progress, runner=runner, filters=filters)
    return run_fetch(manifest, folder, cfg, retry_failed, progress=progress, filters=filters)


def run(
    recipe: str | Path,
    out: str | Path,
    *,
    manifest: str | Path | None = None,
    videos: str | Path | None = None,
    images: str | Path | None = None,
    fps: float | None = None,
    sets: Sequence[str] = (),
    overrides: dict[str, Any] | None = None,
    retry_failed: bool = False,
    replace: bool = False,
    cookies: str | Path | None = None,
    echo: Echo = _quiet,
) -> "PipelineSummary":
    """``mf2 run``: a recipe (a YAML file or a built-in name: 2mf2, pravg, deblur-model...)
    end to end: fetch, landmarks, flow, every simulate job, and training when the recipe
    has it; resumable. ``sets``: ``KEY=VALUE`` overrides as ``--set`` takes them
    (``jobs.0.L=9``); ``overrides``: the same as a dict (``{"dask.workers": 0}``). Unlike
    ``simulate``, a recipe's ``dask`` section decides where it runs (its default: a
    LocalCluster of one process per core)."""
    from mf2.builtin import resolve
    from mf2.faces.select import check_backend
    from mf2.pipeline.recipe import load_recipe
    from mf2.pipeline.run import run_pipeline
    from mf2.pipeline.runner import default_workers, make_runner
    from mf2.video import require_ffmpeg

    rec = load_recipe(resolve("recipes", recipe), list(sets), overrides or {})
    rec.simulate_configs()
    require_ffmpeg()
    folder = check_writable_dir(Path(out))
    gpu = check_backend(rec.landmark_config()) == "fan"
    n = default_workers() if rec.dask.workers is None else rec.dask.workers
    with make_runner(n, rec.dask.scheduler, gpu, echo) as runner:
        return run_pipeline(
            rec,
            folder,
            runner,
            None if manifest is None else resolve("manifests", manifest),
            None if videos is None else str(videos),
            retry_failed,
            None if cookies is None else str(cookies),
            echo=echo,
            replace=replace,
            fps=fps,
            images=None if images is None else str(images),
        )
