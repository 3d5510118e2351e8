"""The `mf2` command. Every user mistake ends as one line on stderr and exit 2."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mf2 import __version__
from mf2.errors import ENVIRONMENT, FILTERED, InputError, Mf2Error, UsageError, os_error_line
from mf2.modes import mode_names
from mf2.params import (
    BY_KEY,
    DASK,
    DEBLUR,
    EVALUATE,
    EXPORT,
    FETCH,
    FILTERS,
    LANDMARKS,
    PAIR_FILTERS,
    SIMULATE,
    SPLIT,
    TRAIN,
)


class AbsPath(click.Path):
    """A path made absolute once, here at the boundary: relative paths mean the user's working
    directory whatever a library (yt-dlp, ffmpeg, a Dask worker) later takes as its own.
    Symlinks are kept (a linked video keeps its name, hence its video_id)."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        return os.path.abspath(os.path.expanduser(value)) if isinstance(value, str) else value


class BuiltinOrPath(AbsPath):
    """A file, or the name of one that ships with mf2 (``2mf2``, ``sample``; `mf2 recipes`
    lists them). An existing path always wins over a name."""

    def __init__(self, kind: str, **kw) -> None:
        super().__init__(**kw)
        self.kind = kind

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not os.path.exists(os.path.expanduser(value)):
            from mf2.builtin import find, names

            found = find(self.kind, value)
            if found is not None:
                return str(found)
            if "/" not in value and "." not in value:  # a bare word: the user meant a name
                self.fail(
                    f"{value}: no such file, and not a built-in {self.kind[:-1]} "
                    f"({', '.join(names(self.kind)) or 'none installed'}; see mf2 recipes)",
                    param,
                    ctx,
                )
        return super().convert(value, param, ctx)


def _options(table, override: bool = False):
    """Click options generated from a table of mf2.params (the one declaration of each
    setting). ``override``: every default is None, meaning "keep the recipe's value"."""

    def deco(f):
        for p in reversed(table):
            default = None if override else p.default
            if p.type is bool and "/" in p.flag:
                f = click.option(p.flag, p.key, default=default, help=p.help)(f)
                continue
            if p.type is bool:
                f = click.option(p.flag, p.key, is_flag=True, default=default, help=p.help)(f)
                continue
            kind = (
                click.Choice(mode_names())
                if p is BY_KEY["mode"]  # the blur modes found (deblur's --mode is its own)
                else click.Choice(p.choices)
                if p.choices
                else AbsPath(dir_okay=False)
                if p.path
                else click.IntRange(min=p.min)
                if p.min is not None
                else p.type
            )
            f = click.option(p.flag, p.key, default=default, show_default=default is not None, type=kind, help=p.help)(
                f
            )
        return f

    return deco


def _alias_options(section: str = "job"):
    """The old flags of renamed settings (mf2.params.ALIASES), hidden; see _take_aliases."""
    from mf2.params import aliases, new_param

    def deco(f):
        for a in aliases(section):
            if a.flag:
                f = click.option(a.flag, f"alias__{a.old}", default=None, type=new_param(a).type, hidden=True)(f)
        return f

    return deco


def _take_aliases(params: dict, section: str = "job") -> None:
    """Old flags given: their value moves to the new key, with a one-line warning."""
    from mf2.params import ALIAS_BY_OLD, new_param

    ctx = click.get_current_context()
    for name in [k for k in params if k.startswith("alias__")]:
        value = params.pop(name)
        if value is None:
            continue
        a = ALIAS_BY_OLD[(section, name[len("alias__") :])]
        new = new_param(a).flag
        if ctx.get_parameter_source(a.new) == click.core.ParameterSource.COMMANDLINE:
            raise UsageError(f"{a.flag} and {new} set one thing; keep {new}")
        params[a.new] = value
        click.echo(f"mf2: warning: {a.flag} is deprecated; use {new}", err=True)


class _RetryFailed(click.ParamType):
    """``--retry-failed`` is a flag in every command. fetch's old values are still read:
    ``all`` (what the flag does now) and ``transient`` (what every run does now)."""

    name = "retry"

    def convert(self, value, param, ctx):
        if value is True or value in ("all", "transient"):
            return value
        self.fail(f"{value!r}: --retry-failed takes no value", param, ctx)


def _retry_option(f):
    return click.option(
        "--retry-failed",
        "retry_failed",
        is_flag=False,
        flag_value=True,
        default=None,
        type=_RetryFailed(),
        metavar="",
        help="Redo every failure an earlier run recorded. Transient ones (network, a lost "
        "worker, a full disk) are redone by every run anyway.",
    )(f)


def _retry(value) -> bool:
    """The flag as a bool; fetch's old values are read with a warning."""
    if value in ("all", "transient"):
        click.echo(
            f"mf2: warning: --retry-failed {value} is deprecated; "
            + ("use --retry-failed alone" if value == "all" else "every run redoes transient failures now"),
            err=True,
        )
    return value is True or value == "all"


def _refuse_other_modes(params: dict) -> None:
    """An option of another blur mode, given on the command line, is a mistake, not a no-op."""
    from mf2.params import SIMULATE

    ctx = click.get_current_context()
    mode = params["mode"]
    for p in SIMULATE:
        if not p.applies(mode) and ctx.get_parameter_source(p.key) == click.core.ParameterSource.COMMANDLINE:
            raise UsageError(f"{p.flag} {params[p.key]}: applies to --mode {' or '.join(p.modes or ())}, not {mode}")


def _filters(params: dict):
    """The video filters (mf2.params.FILTERS), taken out of a command's keywords."""
    from mf2.video.filters import VideoFilter

    f = VideoFilter(**{p.target: params.pop(p.key) for p in FILTERS})
    f.validate()
    return f


def _fps_option(f):
    return click.option(
        "--fps",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Frame rate of videos given as folders of numbered frames (a file has its own).",
    )(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mf2")
def cli() -> None:
    """Build motion-blurred / sharp face pairs from real face videos (Chrysos et al., IJCV 2018)."""


@cli.command()
@click.argument("videos", nargs=-1, required=True, type=AbsPath())
@_fps_option
def probe(videos: tuple[str, ...], fps: float | None) -> None:
    """Print what ffprobe says of each video (fps as an exact fraction, rotation, VFR...) as JSON lines.

    \b
    Examples:
      mf2 probe clip.mp4
      mf2 probe videos/*.mp4 | jq .fps
    """
    from mf2 import api

    failed = 0
    for v in videos:
        try:
            click.echo(json.dumps(api.probe(v, fps).to_json()))
        except InputError as e:
            click.echo(f"mf2: error: {e}", err=True)
            failed += 1
    if failed:
        sys.exit(1)


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


def _simulate(
    videos: str | None,
    out: str,
    cfg,
    contact: bool,
    workers: int | None = 0,
    scheduler: str | None = None,
    retry_failed: bool = False,
    replace: bool = False,
    fps: float | None = None,
    filters=None,
    images: str | None = None,
):
    from mf2 import api

    summary = api.simulate(
        out,
        videos,
        images=images,
        fps=fps,
        workers=workers,
        scheduler=scheduler,
        retry_failed=retry_failed,
        replace=replace,
        contact_sheet=contact,
        echo=_echo_err,
        config=cfg,
        filters=filters,
    )
    _report_videos(summary)
    click.echo(f"mf2 simulate: {summary.line()}", err=True)
    _stop_on_environment(summary)
    return summary


def _script_options(f):
    """--json and --strict: the same two flags, meaning the same, on every command that runs jobs."""
    f = click.option(
        "--strict", is_flag=True, help="Exit 1 when any input failed or nothing was made (default: 0, failures listed)."
    )(f)
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the summary as one JSON object on stdout (messages stay on stderr).",
    )(f)


def _finish(summary: dict, problems: list[str], as_json: bool, strict: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    if strict and problems:
        raise Mf2Error(f"--strict: {'; '.join(problems)}")


def _stop_on_environment(summary) -> None:
    """A full or read-only disk is no video's fault and stops every video alike: one line,
    exit 1. Finished videos are kept; the next run resumes with the rest."""
    hit = [f for f in summary.failures if f["error_class"] in ENVIRONMENT]
    if hit:
        raise Mf2Error(f"{len(hit)} video(s) stopped: {hit[0]['error']}")


def _report_videos(summary, prefix: str = "") -> None:
    """Each failed video and each video without pairs, with its reason, before the summary
    line: a user should not have to open failures.parquet to learn what went wrong."""
    shown = 10
    for f in summary.failures[:shown]:
        if f["error_class"] == FILTERED:
            click.echo(f"{prefix}{f['video_id']}: filtered: {f['error']}", err=True)
            continue
        click.echo(f"{prefix}{f['video_id']}: failed at {f['stage']} ({f['error_class']}): {f['error']}", err=True)
    for vid, note in list(summary.notes.items())[:shown]:
        click.echo(f"{prefix}{vid}: no pairs: {note}", err=True)
    more = max(0, len(summary.failures) - shown) + max(0, len(summary.notes) - shown)
    if more:
        click.echo(f"{prefix}... and {more} more", err=True)
    if summary.n_failed or summary.n_filtered:
        click.echo(f"{prefix}failures and filtered videos recorded in {summary.failures_path}", err=True)


@cli.command()
@click.option(
    "--videos",
    type=AbsPath(),
    default=None,
    help="A video file, a folder of numbered frames, or a folder of videos (or of one video per "
    "subfolder, as 300VW's NNN/vid.avi with NNN/annot/*.pts).",
)
@click.option(
    "--images",
    type=AbsPath(),
    default=None,
    help="Face photos (--mode synthetic): a folder searched recursively (NAME/x.jpg: NAME is the "
    "identity), one photo, or a CSV with path and identity columns. Each photo is its own source.",
)
@_fps_option
@click.option("--out", required=True, type=AbsPath(file_okay=False), help="Output folder (resumable).")
@_options(SIMULATE)
@_alias_options()
@click.option(
    "--contact-sheet/--no-contact-sheet", default=True, show_default=True, help="Write OUT/contact_sheet.png."
)
@_options(LANDMARKS)
@_options(FILTERS)
@_options(DASK)
@_retry_option
@click.option(
    "--replace",
    is_flag=True,
    help="OUT holds pairs made with other settings: delete them and start over (default: refuse).",
)
@_script_options
def simulate(
    videos, images, fps, out, contact_sheet, workers, scheduler, retry_failed, replace, as_json, strict, **params
) -> None:
    """Simulate blurry/sharp pairs; writes OUT/pairs.parquet, PNGs, landmark and flow tables, failures.

    \b
    Examples:
      mf2 simulate --videos clips/ --mode pravg --L 7 --out runs/pravg7
      mf2 simulate --videos DATA/fetch.parquet --mode vla --direction both --out runs/vla
      mf2 simulate --videos clip.mp4 --mode synthetic --seed 0 --out-size 128 --out runs/syn --json --strict
      mf2 simulate --images stills/ --mode synthetic --out runs/photos
    """
    from mf2.api import simulate_config

    _take_aliases(params)
    _refuse_other_modes(params)
    cfg, filters = simulate_config(**params)
    summary = _simulate(
        videos, out, cfg, contact_sheet, workers, scheduler, _retry(retry_failed), replace, fps, filters, images
    )
    _finish(summary.to_json(), summary.problems(), as_json, strict)


def _run_overrides(params: dict, workers: int | None, scheduler: str | None) -> dict:
    """The dedicated flags of `mf2 run` as recipe keys; a flag not given keeps the recipe's value."""
    given = (
        ("landmarks.backend", params["backend"]),
        ("landmarks.fan_weights", params["fan_weights"]),
        ("jobs.*.out_size", params["out_size"]),
        ("dask.workers", workers),
        ("dask.scheduler", scheduler),
        *((f"filters.{p.key}", params[p.key]) for p in FILTERS),
    )
    return {k: v for k, v in given if v is not None}


@cli.command(name="run")
@click.argument("recipe", type=BuiltinOrPath("recipes", dir_okay=False))
@click.option(
    "--manifest",
    type=BuiltinOrPath("manifests", dir_okay=False),
    default=None,
    help="Video manifest CSV (or a built-in name): fetch the videos first (into OUT/data).",
)
@click.option(
    "--videos", type=AbsPath(), default=None, help="Local videos instead: a file, a folder, or a DATA/fetch.parquet."
)
@click.option(
    "--images",
    type=AbsPath(),
    default=None,
    help="Face photos for the recipe's photo jobs (inputs: photos): a folder (NAME/x.jpg: NAME is the "
    "identity), one photo, or a CSV with path and identity columns.",
)
@_fps_option
@click.option("--out", required=True, type=AbsPath(file_okay=False), help="Run folder (resumable).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value: jobs.0.L=9, jobs.*.out_size=128, landmarks.backend=dlib (repeatable).",
)
@_options([p for p in LANDMARKS if p.key != "keyframe_interval"], override=True)
@_options([BY_KEY["out_size"]], override=True)
@_options(FILTERS, override=True)
@_alias_options()
@_retry_option
@click.option("--replace", is_flag=True, help="A job folder holds pairs made with other settings: start it over.")
@click.option("--cookies", type=AbsPath(dir_okay=False), default=None, help="Netscape cookies file for yt-dlp.")
@_options(DASK, override=True)
@_script_options
def run_cmd(
    recipe,
    manifest,
    videos,
    images,
    fps,
    out,
    sets,
    retry_failed,
    replace,
    cookies,
    workers,
    scheduler,
    as_json,
    strict,
    **params,
) -> None:
    """Run a recipe end to end: fetch, landmarks, flow, every simulate job.

    RECIPE is a YAML file or a built-in name (2mf2, deblur-model, paper-model, paper-tests, pravg, synthetic; mf2 recipes lists them).

    \b
    Examples:
      mf2 run 2mf2 --videos clips/ --out runs/2mf2
      mf2 run pipelines/pravg.yaml --manifest sample --out runs/pravg --set jobs.0.L=9
      mf2 run deblur-model --videos clips/ --images photos/ --out runs/model   # pairs, then RUN/model.pt
    """
    from mf2 import api

    _take_aliases(params)
    overrides = _run_overrides(params, workers, scheduler)
    summary = api.run(
        recipe,
        out,
        manifest=manifest,
        videos=videos,
        images=images,
        fps=fps,
        sets=sets,
        overrides=overrides,
        retry_failed=_retry(retry_failed),
        replace=replace,
        cookies=cookies,
        echo=_echo_err,
    )
    for name, s in summary.jobs.items():
        _report_videos(s, f"{name}: ")
        click.echo(f"{name}: {s.line()}", err=True)
    for s in summary.jobs.values():
        _stop_on_environment(s)
    rate = f", {summary.frames / summary.wall_s:.1f} frames/s" if summary.wall_s and summary.frames else ""
    if summary.training:
        click.echo(f"train: model -> {summary.training['model']}", err=True)
    click.echo(
        f"mf2 run {summary.recipe}: {summary.n_videos} sources in {summary.wall_s:.1f} s{rate} -> {out}/run.json",
        err=True,
    )
    _finish(
        summary.to_json(), [f"{name}: {p}" for name, s in summary.jobs.items() for p in s.problems()], as_json, strict
    )


@cli.command()
@click.argument("manifest", type=BuiltinOrPath("manifests"))
@click.option(
    "--out", required=True, type=AbsPath(file_okay=False), help="Folder for videos/ and fetch.parquet (resumable)."
)
@_options(FETCH)
@_options([p for p in FILTERS if p.key != "min_face"])
@_alias_options("fetch")
@click.option("--cookies", type=AbsPath(dir_okay=False), default=None, help="Netscape cookies file for yt-dlp.")
@_retry_option
@click.option("--validate-only", is_flag=True, help="Check the manifest and exit.")
@click.option(
    "--scheduler",
    default=None,
    help="Download on the workers of this Dask cluster (tcp://host:8786); --starts-per-minute paces them all.",
)
@_script_options
def fetch(manifest, out, cookies, retry_failed, validate_only, scheduler, as_json, strict, **params) -> None:
    """Download the videos a manifest CSV lists (yt-dlp, or local copies); writes OUT/fetch.parquet.

    MANIFEST is a CSV file or a built-in name (sample, videos; mf2 recipes lists them).

    \b
    Examples:
      mf2 fetch sample --out data
      mf2 fetch manifests/videos.csv --out data --validate-only
    """
    from mf2 import api

    _take_aliases(params, "fetch")
    params.pop("min_face", None)  # faces are found later, by simulate and run
    retry_failed = _retry(retry_failed)
    if validate_only:
        from mf2.fetch.download import FetchConfig
        from mf2.fetch.manifest import read_manifest

        FetchConfig(**{p.target: params[p.key] for p in FETCH}).validate()
        _filters({**params, "min_face": 0})
        rows = read_manifest(manifest)
        n_videos = len({r.key for r in rows})
        click.echo(
            f"mf2 fetch: {manifest}: {len(rows)} rows, {n_videos} videos, "
            f"{len({r.identity for r in rows if r.identity})} identities: valid"
        )
        return

    def report(row, res) -> None:
        msg = res["status"] if res["status"] == "ok" else f"{res['status']} ({res['error_class']}: {res['error']})"
        click.echo(f"{row.key}: {msg}", err=True)

    summary = api.fetch(
        manifest, out, cookies=cookies, retry_failed=retry_failed, scheduler=scheduler, progress=report, **params
    )
    click.echo(f"mf2 fetch: {summary.line()}", err=True)
    _finish(summary.to_json(), summary.problems(), as_json, strict)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def recipes(as_json: bool) -> None:
    """List the recipes, training configs and manifests that ship with mf2, by the names the
    other commands take.

    \b
    Examples:
      mf2 recipes
      mf2 run 2mf2 --videos clips/ --out runs/2mf2
      mf2 train --config small --pairs runs/2mf2/vla --out runs/small
    """
    from mf2.builtin import KINDS, folder, listing

    items = listing()
    if as_json:
        click.echo(
            json.dumps(
                {
                    k: [{"name": b.name, "path": str(b.path), "summary": b.summary} for b in items if b.kind == k]
                    for k in KINDS
                },
                indent=2,
            )
        )
        return
    use = {"recipes": "mf2 run NAME", "configs": "mf2 train --config NAME", "manifests": "mf2 fetch NAME"}
    for kind in KINDS:
        click.echo(f"{kind} ({use[kind]}; {folder(kind)}):")
        for b in (b for b in items if b.kind == kind):
            click.echo(f"  {b.name:<12} {b.summary}")


@cli.command()
@click.argument("out", type=AbsPath(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print OUT/stats/stats.json on stdout instead of the text.")
def stats(out: str, as_json: bool) -> None:
    """Summarise OUT/pairs.parquet and write PNG plots to OUT/stats/ (L, stop reasons, motion, pairs per video).

    \b
    Examples:
      mf2 stats runs/vla
      mf2 stats runs/vla --json | jq .stop_reasons
    """
    from mf2 import api

    report = api.stats(out)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.text())
    click.echo(f"plots: {report.folder}", err=True)


@cli.command()
@click.option("--out", default="demo_out", show_default=True, type=AbsPath(file_okay=False))
def demo(out: str) -> None:
    """Run the whole slice (PrAvg, L=7) on the embedded sample video and write a contact sheet.

    \b
    Examples:
      mf2 demo --out demo_out
    """
    from mf2.modes.config import SimulateConfig
    from mf2.sample import sample_video

    _simulate(str(sample_video()), out, SimulateConfig(), True)


@cli.command()
def sample() -> None:
    """Print the path of the embedded sample video.

    \b
    Examples:
      mf2 sample
      mf2 simulate --videos "$(mf2 sample)" --out out
    """
    from mf2.sample import sample_video

    click.echo(str(sample_video()))


@cli.command()
@click.argument("dataset", type=AbsPath())
@click.option("--no-hashes", is_flag=True, help="Skip re-hashing the images (presence and sizes still checked).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(dataset: str, no_hashes: bool, as_json: bool) -> None:
    """Check a dataset (folder or pairs .parquet) against its manifest; exit 1 naming each problem.

    \b
    Examples:
      mf2 verify runs/vla
      mf2 verify shared_vla.parquet --no-hashes --json
    """
    from mf2.api import verify as run_verify

    rep = run_verify(dataset, hashes=not no_hashes)
    if rep.unreadable and not as_json:
        click.echo(f"mf2: error: {rep.problems[0]}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(rep.to_json(), indent=2))
    else:
        for w in rep.warnings:
            click.echo(f"warning: {w}")
        for p in rep.problems:
            click.echo(f"problem: {p}")
        state = "OK" if rep.ok else f"{len(rep.problems)} problem(s)"
        click.echo(
            f"mf2 verify: {rep.manifest}: {rep.n_pairs} pairs, {rep.n_files_checked} files checked, "
            f"{len(rep.warnings)} warning(s): {state}",
            err=True,
        )
    if not rep.ok:
        sys.exit(1)


@cli.command()
@click.argument("dataset", type=AbsPath())
@click.option("--out", required=True, type=AbsPath(), help="A .parquet file with --no-images, else a new folder.")
@_options([p for p in EXPORT if p.key == "format"])
@click.option("--no-images", is_flag=True, help="Write only the manifest (to share; rebuild with mf2 materialize).")
@click.option("--split", "splits", multiple=True, help="Export only these splits (repeatable).")
@click.option("--link", is_flag=True, help="Hard-link the images instead of copying them (folder).")
@_options([p for p in EXPORT if p.key == "shard_pairs"])
def export(
    dataset: str, out: str, format: str, no_images: bool, splits: tuple[str, ...], link: bool, shard_pairs: int
) -> None:
    """Export a dataset: its manifest without pixels, a self-contained copy, or Hub-ready shards.

    \b
    Examples:
      mf2 export runs/2mf2/vla --no-images --out vla.parquet       # share without pixels
      mf2 export runs/2mf2/vla --format hf --out hub/vla            # then: huggingface-cli upload
      mf2 export runs/2mf2/vla --format webdataset --split train --out shards/
    """
    from mf2.api import export as run_export
    from mf2.share.hub import HubExport

    res = run_export(dataset, out, images=not no_images, splits=splits, link=link, format=format,
                     shard_pairs=shard_pairs)  # fmt: skip
    if not isinstance(res, HubExport):
        click.echo(f"mf2 export: {res.n_pairs} pairs, {res.n_files} image files -> {res.path}", err=True)
        return
    per = ", ".join(f"{s} {n}" for s, n in res.splits.items())
    click.echo(f"mf2 export: {res.n_pairs} pairs ({per}) in {len(res.files)} {format} shard(s) -> {res.path}", err=True)


@cli.command()
@click.argument("manifest", type=AbsPath())
@click.option(
    "--videos",
    required=True,
    type=AbsPath(),
    help="Local copies of the videos: a folder (<video_id>.<ext>) or DATA/fetch.parquet.",
)
@click.option("--out", required=True, type=AbsPath(file_okay=False), help="Dataset folder to build (resumable).")
@click.option(
    "--keep-mismatched",
    is_flag=True,
    help="Keep pairs whose pixels differ (e.g. a re-encoded video), with their new hashes.",
)
def materialize(manifest: str, videos: str, out: str, keep_mismatched: bool) -> None:
    """Rebuild the images of a manifest from local videos; byte-identical when the videos match.

    \b
    Examples:
      mf2 materialize 2mf2_vla.parquet --videos DATA/fetch.parquet --out DS
    """
    from mf2.api import materialize as run_materialize

    res = run_materialize(manifest, videos, out, keep_mismatched=keep_mismatched)
    click.echo(f"mf2 materialize: {res.line()} ({res.seconds:.1f} s)", err=True)
    if res.n_mismatched or res.n_missing:
        click.echo(f"per-pair report: {res.report_path}", err=True)
        sys.exit(1)


@cli.command(name="filter")
@click.argument("dataset", type=AbsPath())
@click.option(
    "--out",
    required=True,
    type=AbsPath(file_okay=False),
    help="The new dataset folder (an interrupted run finishes when run again).",
)
@_options([BY_KEY[k] for k in PAIR_FILTERS])
def filter_pairs(dataset: str, out: str, **rules: float) -> None:
    """Write the pairs that pass the pair filters as a new dataset (PNGs hard-linked).

    The same rules as `mf2 simulate --min-target-sharpness/--min-blur`, on the manifest's
    measures; the filter is recorded in the new manifest's metadata (mf2.filter).

    \b
    Examples:
      mf2 filter DS --min-target-sharpness 0.9 --out DS-sharp
      mf2 filter DS --min-blur 38 --out DS-moving      # drop pairs that barely differ from their target
    """
    from mf2 import api

    res = api.filter_pairs(dataset, out, **rules)
    why = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in res.dropped.items())
    measured = f"; {res.n_measured} pairs measured from their PNGs (made before schema 1.8)" if res.n_measured else ""
    click.echo(
        f"mf2 filter: {res.n_kept} of {res.n_in} pairs kept (dropped: {why or 'none'}){measured} -> {res.export.path}",
        err=True,
    )


@cli.command()
@click.argument("dataset", type=AbsPath())
@_options(SPLIT)
@click.option(
    "--identities",
    type=AbsPath(dir_okay=False),
    default=None,
    help="CSV or fetch.parquet with video_id (or key) and identity columns: fills the identity column.",
)
def split(dataset: str, by: str, ratios: str, seed: int, identities: str | None) -> None:
    """Assign train/val/test deterministically so that no identity (or video) is in two splits.

    \b
    Examples:
      mf2 split DS --by identity --ratios train=0.8,val=0.1,test=0.1 --seed 0
    """
    from mf2 import api

    res = api.split(dataset, by, ratios, seed, identities)
    for name, c in res.splits.items():
        click.echo(f"{name}: {c['pairs']} pairs, {c['videos']} videos, {c['identities']} identities")
    click.echo(f"mf2 split: {res.n_pairs} pairs by {by} -> {res.manifest}", err=True)


@cli.command()
@click.argument("dataset", type=AbsPath())
@click.option("--video-id", "video_ids", multiple=True, required=True, help="Video to take down (repeatable).")
@click.option("--reason", default="", help="Recorded in removed.parquet (e.g. a takedown request's reference).")
def remove(dataset: str, video_ids: tuple[str, ...], reason: str) -> None:
    """Remove videos' pairs, images and cached tables from a dataset, and remember the takedown.

    \b
    Examples:
      mf2 remove DS --video-id 1zcIwhmdeo4 --reason "request 2026-11-24"
    """
    from mf2 import api

    res = api.remove(dataset, video_ids, reason)
    click.echo(f"mf2 remove: {len(res.video_ids)} video(s), {res.n_pairs} pairs, {res.n_files} files removed", err=True)


def _datasets(positional: tuple[str, ...], old: tuple[str, ...], command: str) -> list[str]:
    """Pair datasets are positional in every command; ``--pairs`` is read with a warning."""
    if old:
        click.echo(
            f"mf2: warning: --pairs is deprecated; give the datasets as arguments (mf2 {command} DATASET ...)", err=True
        )
    return list(positional) + list(old)


def _old_pairs_option(f):
    return click.option("--pairs", "old_pairs", multiple=True, type=AbsPath(), hidden=True)(f)


@cli.command()
@click.argument("datasets", nargs=-1, type=AbsPath())
@_old_pairs_option
@click.option(
    "--hg-pairs",
    "hg_pairs",
    multiple=True,
    type=AbsPath(),
    help="Pair dataset(s) for the hourglass alone; the paper's recipe: --hg-pairs SYNTHETIC --pairs VLA.",
)
@click.option(
    "--gate-pairs",
    "gate_pairs",
    multiple=True,
    type=AbsPath(),
    help="Pair dataset(s) the blur gate learns from (their motion-blurred pairs), beside the hourglass; "
    "e.g. the videos' PrAvg and VLA pairs while the hourglass trains on PrAvg and photos.",
)
@_options([p for p in TRAIN if p.key != "threads"])
@click.option("--out", required=True, type=AbsPath(file_okay=False), help="Run folder (resumable).")
@click.option(
    "--restart-cgan",
    is_flag=True,
    help="The hourglass was (or will be) trained further than the cGAN's: retrain the cGAN on it "
    "(the old cGAN checkpoint is kept).",
)
@_options([p for p in TRAIN if p.key == "threads"])
@click.option("--json", "as_json", is_flag=True, help="Print RUN/train_summary.json on stdout when done.")
def train(
    datasets, old_pairs, hg_pairs, gate_pairs, stage, config, max_steps, device, out, restart_cgan, threads, as_json
) -> None:
    """Train the hourglass then the two-pathway cGAN on pair manifests; resumable (torchrun for multi-GPU).

    DATASETS are pair datasets (folders or pairs.parquet), any mode. They train the cGAN, and the
    hourglass too unless --hg-pairs is given.

    \b
    Examples:
      mf2 train runs/vla --config small --out runs/model
      mf2 train runs/vla --hg-pairs runs/synthetic --config paper --out runs/paper  # the paper's recipe
    """
    from mf2.api import train as run_train

    pairs = _datasets(datasets, old_pairs, "train")
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 reports
    results = run_train(
        list(pairs),
        out,
        config,
        stage,
        max_steps,
        device,
        list(hg_pairs) or None,
        threads,
        restart_cgan,
        echo=_echo_err if main_rank else (lambda line: None),
        gate_pairs=list(gate_pairs) or None,
    )
    if not main_rank:
        return
    for st, r in results.items():
        val = ", ".join(f"{k} {v:.4f}" for k, v in r.val.items())
        click.echo(f"{st}: {r.steps} steps, {r.images_per_s:.1f} images/s; val {val}", err=True)
    if results:
        from mf2.models.config import RESTORER_NAMES, load_config

        first = RESTORER_NAMES[load_config(config).restorer]
        holds = f"{first} + cGAN" if "cgan" in results else f"the {first} alone"
        click.echo(f"mf2 train: model ({holds}) -> {Path(out) / 'model.pt'}", err=True)
    if as_json:
        click.echo((Path(out) / "train_summary.json").read_text())


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=AbsPath())
@click.option("--checkpoint", required=True, type=AbsPath(dir_okay=False), help="RUN/model.pt from mf2 train.")
@click.option("--out", required=True, type=AbsPath(file_okay=False))
@_options([p for p in DEBLUR if p.key == "mode"])
@_options([BY_KEY["margin"]])
@_options([p for p in DEBLUR if p.key != "mode"])
def deblur(inputs, checkpoint, out, mode, margin, device, reference, ensemble) -> None:
    """Restore face images, folders of them, and videos with a trained model.

    \b
    Examples:
      mf2 deblur face.png frames/ --checkpoint runs/model/model.pt --out restored
      mf2 deblur talk.mp4 --reference 120 --checkpoint runs/model/model.pt --out restored
    """
    from mf2.api import deblur as run_deblur

    r = run_deblur(list(inputs), checkpoint, out, mode, margin, device, reference, ensemble)
    click.echo(f"mf2 deblur: {r.model}", err=True)
    for line in r.skipped:
        click.echo(f"skipped: {line}", err=True)
    for video, t in r.traces.items():
        click.echo(
            f"{video}: identity cosine to frame {t['reference_frame']} over {t['frames']} frames: "
            f"blurred {t['blurred_mean']:.3f}, restored {t['restored_mean']:.3f}",
            err=True,
        )
    if r.skipped and not (r.images or r.videos):
        raise InputError(f"none of the {len(r.skipped)} input(s) could be read; nothing restored")
    click.echo(
        f"mf2 deblur: {r.images} images, {r.videos} videos ({r.frames} frames); {r.faces} faces restored, "
        f"{r.no_face} without a face left as they were -> {out}",
        err=True,
    )


@cli.command()
@click.argument("datasets", nargs=-1, type=AbsPath())
@_old_pairs_option
@click.option(
    "--stills",
    type=AbsPath(file_okay=False),
    default=None,
    help="Folder of images with 68-point .pts annotations: blurred with synthetic kernels and scored "
    "against the human ground truth.",
)
@click.option("--restored", multiple=True, help="NAME=DIR: a method's restored images named <pair_id>.png; repeatable.")
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    help="[NAME=]RUN/model.pt: an mf2 model from mf2 train, run on every blurry crop; repeatable.",
)
@click.option(
    "--hourglass",
    "hourglasses",
    multiple=True,
    help="[NAME=]RUN/model.pt: that model's hourglass alone (step 1, the paper's HG row); repeatable.",
)
@click.option("--out", required=True, type=AbsPath(file_okay=False), help="Report folder.")
@_options([p for p in LANDMARKS if p.key in ("backend", "fan_weights")])  # the localiser run on every method's images
@click.option("--no-identity", is_flag=True, help="Skip identity embeddings.")
@_options(EVALUATE)
@click.option(
    "--kernel-size",
    "kernel_sizes",
    multiple=True,
    type=int,
    default=(BY_KEY["kernel_size"].default,),
    show_default=True,
    help="--stills: synthetic kernel sizes, one blur setting each (repeatable).",
)
@click.option("--seed", default=BY_KEY["seed"].default, show_default=True, type=int, help="--stills: kernel seed.")
@click.option(
    "--verification",
    type=AbsPath(dir_okay=False, exists=True),
    default=None,
    help="YTF-style video pairs (fold, video_a, video_b, same): face verification, 10-fold mean "
    "accuracy ± std per method (the paper's Table 8).",
)
@click.option("--html", "make_html", is_flag=True, help="Also write index.html with the table, plots and examples.")
@click.option("--json", "as_json", is_flag=True, help="Print REPORT/report.json on stdout instead of the table.")
def evaluate(
    datasets, old_pairs, restored, checkpoints, hourglasses, out, backend, no_identity, make_html, as_json, **settings
) -> None:
    """Score Blurred, Oracle and restored images: SSIM/PSNR, landmark AUC/failure rate, identity.

    DATASETS are pair datasets (folders or pairs.parquet); their blur settings become table columns.

    \b
    Examples:
      mf2 evaluate runs/pravg7 --checkpoint runs/model/model.pt --out report --html
      mf2 evaluate runs/pravg7 runs/vla --restored mine=restored/ --limit 200 --out report --json
    """
    from tqdm import tqdm

    from mf2 import api

    with tqdm(unit="pair", disable=None) as bar:
        ev = api.evaluate(
            _datasets(datasets, old_pairs, "evaluate"),
            checkpoints,
            hourglasses,
            restored,
            out=out,
            progress=bar.update,
            echo=_echo_err,
            landmarks=backend,
            identity=not no_identity,
            html=make_html,
            **settings,  # stills, kernel_sizes, seed, fan_weights, gt, init, limit, max_error, verification
        )
    from mf2.evaluate.report import markdown
    from mf2.evaluate.run import to_json

    click.echo(json.dumps(to_json(ev), indent=2) if as_json else markdown(ev).split("## PSNR")[0].rstrip())
    click.echo(
        f"mf2 evaluate: {sum(ev.n_pairs.values())} pairs x {len(ev.methods)} methods, {ev.pairs_per_s:.2f} "
        f"pairs/s -> {out} ({len(ev.report_files)} files)",
        err=True,
    )


def entry() -> None:
    """The `mf2` command (console script and ``python -m mf2``): ``main``, then an exit that
    skips the interpreter's teardown (mf2.quick_exit says why). An error that is a bug still
    leaves through Python's usual path, with its traceback."""
    from mf2.quick_exit import exit_now

    try:
        main()
    except SystemExit as e:
        exit_now(e.code)
    exit_now(0)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="mf2", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("mf2: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"mf2: error: {e.format_message()}", err=True)
        sys.exit(2)
    except (UsageError, InputError) as e:
        click.echo(f"mf2: error: {e}", err=True)
        sys.exit(2)
    except Mf2Error as e:
        click.echo(f"mf2: error: {e}", err=True)
        sys.exit(1)
    except OSError as e:  # the environment's (read-only, full, permissions), not a bug: one line
        click.echo(f"mf2: error: {os_error_line(e)}", err=True)
        sys.exit(1)
