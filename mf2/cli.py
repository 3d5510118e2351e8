"""The `mf2` command. Every user mistake ends as one line on stderr and exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mf2 import __version__
from mf2.errors import InputError, Mf2Error, UsageError


def _landmark_options(f):
    f = click.option("--landmarks", "landmarks", default="auto", show_default=True,
                     type=click.Choice(["auto", "dlib", "fan"]),
                     help="Landmark backend: fan (GPU, face-alignment) when CUDA and its weights exist, else dlib.")(f)
    f = click.option("--fan-weights", type=click.Path(dir_okay=False), default=None,
                     help="2D FAN state dict (default: face-alignment's torch-hub cache).")(f)
    f = click.option("--keyframe-interval", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Frames between forced face re-detections; landmarks are tracked in between.")(f)
    return f


def _landmark_config(landmarks: str, fan_weights: str | None, keyframe_interval: int):
    from mf2.faces.select import LandmarkConfig

    return LandmarkConfig(backend=landmarks, fan_weights=fan_weights, keyframe_interval=keyframe_interval)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mf2")
def cli() -> None:
    """Build motion-blurred / sharp face pairs from real face videos (Chrysos et al., IJCV 2018)."""


@cli.command()
@click.argument("videos", nargs=-1, required=True, type=click.Path())
def probe(videos: tuple[str, ...]) -> None:
    """Print what ffprobe says of each video (fps as an exact fraction, rotation, VFR...) as JSON lines."""
    from mf2.video import probe as probe_video

    failed = 0
    for v in videos:
        try:
            click.echo(json.dumps(probe_video(v).to_json()))
        except InputError as e:
            click.echo(f"mf2: error: {e}", err=True)
            failed += 1
    if failed:
        sys.exit(1)


def _simulate(videos: str, out: str, cfg, contact: bool) -> None:
    from mf2.simulate import run_simulate
    from mf2.sources import resolve_videos
    from mf2.video import require_ffmpeg

    require_ffmpeg()
    summary = run_simulate(resolve_videos(videos), Path(out), cfg)
    if contact:
        from mf2.viz import contact_sheet

        sheet = contact_sheet(Path(out))
        if sheet:
            click.echo(f"contact sheet: {sheet}", err=True)
    click.echo(f"mf2 simulate: {summary.line()}", err=True)
    if summary.n_failed:
        click.echo(f"failures recorded in {summary.failures_path}", err=True)


@cli.command()
@click.option("--videos", required=True, type=click.Path(), help="A video file or a folder of videos.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (resumable).")
@click.option("--mode", default="pravg", show_default=True, type=click.Choice(["pravg", "vla", "synthetic"]),
              help="pravg: average a fixed number L of frames; vla: variable-length averaging stopped by "
                   "the paper's overlap/quality/flow rules; synthetic: random camera-shake kernels on single frames.")
@click.option("--L", "L", default=7, show_default=True, type=int, help="pravg: frames per blurry image (odd, >= 3).")
@click.option("--stride", default=1, show_default=True, type=int,
              help="pravg, synthetic: exposures between consecutive pairs.")
@click.option("--crf", default="srgb", show_default=True, type=click.Choice(["srgb", "gamma2.2", "linear"]),
              help="Camera response inverted before averaging (linear: average stored values).")
@click.option("--crop-size", default=256, show_default=True, type=int, help="Side of the output crops in pixels.")
@click.option("--margin", default=0.25, show_default=True, type=float,
              help="Crop margin around the landmarks, as a share of their extent on each side.")
@click.option("--keep-duplicates", is_flag=True, help="Count repeated frames as exposures (default: skip them).")
@click.option("--min-L", "min_L", default=3, show_default=True, type=int, help="vla: shortest sub-sequence kept (odd).")
@click.option("--max-L", "max_L", default=21, show_default=True, type=int, help="vla: longest sub-sequence.")
@click.option("--direction", default="forward", show_default=True,
              type=click.Choice(["forward", "reverse", "both"]),
              help="vla: temporal order; both adds reverse pairs that do not duplicate a forward pair.")
@click.option("--min-overlap", default=0.5, show_default=True, type=float,
              help="vla rule (i): IoU of each facial part's box, first vs last frame.")
@click.option("--min-quality", default=0.75, show_default=True, type=float,
              help="vla rule (ii): SSIM of the running average with the middle frame.")
@click.option("--max-fb-bad", default=0.25, show_default=True, type=float,
              help="vla rule (iii): share of face pixels failing the forward-backward flow check.")
@click.option("--osc-frac", default=0.005, show_default=True, type=float,
              help="vla rule (iii): flow reversal counted as oscillation above this share of the face size.")
@click.option("--dup-jaccard", default=0.5, show_default=True, type=float,
              help="vla: a reverse pair sharing this share of frames with a forward pair is a duplicate.")
@click.option("--flow", "flow_method", default="dis", show_default=True, type=click.Choice(["dis", "farneback"]),
              help="Optical flow method (OpenCV).")
@click.option("--flow-preset", default="medium", show_default=True,
              type=click.Choice(["ultrafast", "fast", "medium"]), help="DIS preset.")
@click.option("--flow-size", default=128, show_default=True, type=int,
              help="Side of the face square the flow is computed on (pixels).")
@click.option("--kernel-size", default=31, show_default=True, type=int,
              help="synthetic: kernel side in output-crop pixels (odd).")
@click.option("--seed", default=0, show_default=True, type=int, help="synthetic: run seed (pairs derive their own).")
@click.option("--noise-sigma", default=0.0, show_default=True, type=float,
              help="synthetic: Gaussian noise added after blurring, in 8-bit levels.")
@click.option("--contact-sheet/--no-contact-sheet", default=True, show_default=True,
              help="Write OUT/contact_sheet.png.")
@_landmark_options
def simulate(videos, out, mode, L, stride, crf, crop_size, margin, keep_duplicates, min_L, max_L, direction,
             min_overlap, min_quality, max_fb_bad, osc_frac, dup_jaccard, flow_method, flow_preset, flow_size,
             kernel_size, seed, noise_sigma, contact_sheet, landmarks, fan_weights, keyframe_interval) -> None:
    """Simulate blurry/sharp pairs; writes OUT/pairs.parquet, PNGs, landmark and flow tables, failures."""
    from mf2.blur.kernels import SyntheticConfig
    from mf2.blur.vla import VlaConfig
    from mf2.flow import FlowConfig
    from mf2.simulate import SimulateConfig

    cfg = SimulateConfig(
        mode=mode, L=L, stride=stride, crf=crf, out_size=crop_size, margin=margin,
        skip_duplicates=not keep_duplicates,
        landmarks=_landmark_config(landmarks, fan_weights, keyframe_interval),
        vla=VlaConfig(min_L=min_L, max_L=max_L, min_overlap=min_overlap, min_quality=min_quality,
                      max_fb_bad=max_fb_bad, osc_frac=osc_frac, direction=direction, dup_jaccard=dup_jaccard),
        flow=FlowConfig(method=flow_method, preset=flow_preset, work_size=flow_size, margin=margin),
        synthetic=SyntheticConfig(kernel_size=kernel_size, seed=seed, noise_sigma=noise_sigma),
    )
    cfg.validate()
    _simulate(videos, out, cfg, contact_sheet)


@cli.command()
@click.argument("manifest", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for videos/ and fetch.parquet (resumable).")
@click.option("--max-height", default=720, show_default=True, type=int,
              help="Highest resolution wanted; the highest frame rate is preferred first.")
@click.option("--rate-limit", default=0.0, show_default=True, type=float,
              help="Downloads started per minute, all workers together (0: no limit).")
@click.option("--sleep-requests", default=0.0, show_default=True, type=float,
              help="Seconds yt-dlp sleeps between the requests of one extraction.")
@click.option("--retries", default=3, show_default=True, type=int,
              help="Extra attempts for transient failures (5xx, 429, network, timeout), with backoff.")
@click.option("--backoff", default=2.0, show_default=True, type=float,
              help="Seconds before the first retry; doubles each time, with jitter.")
@click.option("--timeout", default=30.0, show_default=True, type=float, help="Socket timeout in seconds.")
@click.option("--cookies", type=click.Path(dir_okay=False), default=None, help="Netscape cookies file for yt-dlp.")
@click.option("--workers", default=2, show_default=True, type=int, help="Downloads in parallel.")
@click.option("--link", is_flag=True, help="Hard-link local files instead of copying them.")
@click.option("--retry-failed", "retry_failed", is_flag=False, flag_value="transient", default=None,
              type=click.Choice(["transient", "all"]),
              help="Retry failures of the previous run: transient classes only (bare flag) or all.")
@click.option("--validate-only", is_flag=True, help="Check the manifest and exit.")
def fetch(manifest, out, max_height, rate_limit, sleep_requests, retries, backoff, timeout, cookies, workers, link,
          retry_failed, validate_only) -> None:
    """Download the videos a manifest CSV lists (yt-dlp, or local copies); writes OUT/fetch.parquet."""
    from mf2.fetch.download import FetchConfig
    from mf2.fetch.manifest import read_manifest
    from mf2.fetch.run import run_fetch
    from mf2.video import require_ffmpeg

    cfg = FetchConfig(max_height=max_height, rate_limit=rate_limit, sleep_requests=sleep_requests, retries=retries,
                      backoff=backoff, timeout=timeout, cookies=cookies, workers=workers, link=link)
    cfg.validate()
    if validate_only:
        rows = read_manifest(manifest)
        n_videos = len({r.key for r in rows})
        click.echo(f"mf2 fetch: {manifest}: {len(rows)} rows, {n_videos} videos, "
                   f"{len({r.identity for r in rows if r.identity})} identities: valid")
        return
    require_ffmpeg()

    def report(row, res) -> None:
        msg = res["status"] if res["status"] == "ok" else f"{res['status']} ({res['error_class']}: {res['error']})"
        click.echo(f"{row.key}: {msg}", err=True)

    summary = run_fetch(manifest, Path(out), cfg, retry_failed, progress=report)
    click.echo(f"mf2 fetch: {summary.line()}", err=True)


@cli.command()
@click.argument("out", type=click.Path(file_okay=False))
def stats(out: str) -> None:
    """Summarise OUT/pairs.parquet and write PNG plots to OUT/stats/ (L, stop reasons, motion, pairs per video)."""
    from mf2.stats import run_stats

    report = run_stats(Path(out))
    click.echo(report.text())
    click.echo(f"plots: {report.folder}", err=True)


@cli.command()
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False))
def demo(out: str) -> None:
    """Run the whole slice (PrAvg, L=7) on the embedded sample video and write a contact sheet."""
    from mf2.sample import sample_video
    from mf2.simulate import SimulateConfig

    _simulate(str(sample_video()), out, SimulateConfig(), True)


@cli.command()
def sample() -> None:
    """Print the path of the embedded sample video."""
    from mf2.sample import sample_video

    click.echo(str(sample_video()))


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
