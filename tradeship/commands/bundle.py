"""`tradeship bundle`: package an exported module for AWS Lambda, Azure Functions or a container."""

from __future__ import annotations

import argparse
from pathlib import Path

from tradeship.options import (
    add_data_options,
    add_forecast_options,
    open_forecaster,
    parse_symbols,
)
from tradeship.settings import Settings

HELP = """\
Build a deploy bundle of an exported module (tradeship export) in --out, with the module's
own SCHEDULE (New York time, NYSE sessions) rendered for the target:

  lambda     function.zip (handler, module, trimmed packages; refused over 250 MB unzipped,
             sizes printed by package), template.yaml (AWS SAM: EventBridge Scheduler in
             America/New_York, retries and event age bounded, credentials from Secrets
             Manager, S3 journal), template-image.yaml + Dockerfile (container image on
             public.ecr.aws/lambda/python for when the zip cannot fit)
  azure      an Azure Functions app (Python v2 model): function_app.py with NCRONTAB timer
             triggers, host.json, requirements.txt, local.settings.json.example
  container  Dockerfile + entrypoint.py (schedule loop, or --once), kubernetes/cronjob.yaml

Every delivery's decision slot is the schedule's intended fire time, so duplicates and
retries reuse the same client order ids; runs arriving later than --late-after seconds only
reconcile; cron fires on NYSE holidays are skipped. Each bundle is scanned: no credential
(patterns + the values of APCA_API_KEY_ID/APCA_API_SECRET_KEY when set) and no tradeship
package but the exported module.

Versions: every target ships exactly the versions the backtest ran (the module's pins);
Lambda defaults to the newest runtime whose platform has a wheel of each (python3.13, else
3.12), and ships other versions only with --allow-version-drift (printed, and recorded in
bundle.json). pyarrow is bundled only when the module's source or a cache reads Parquet.
--verify writes a parity certificate into bundle.json (see below). Deploying: docs/deploy.md.
"""

EXAMPLES = """\
examples:
  tradeship export --strategy prophet_momentum --source demo --out build/strategy.py
  tradeship bundle --target lambda --module build/strategy.py --out build/lambda
  tradeship bundle --target lambda --module build/strategy.py --out build/lambda --verify \\
      --source parquet:../shared/data/sp500_daily.parquet --start 2023-01-03 --end 2024-12-31
  tradeship bundle --target azure --module build/strategy.py --out build/azure --azure-clock utc
  tradeship bundle --target container --module build/strategy.py --out build/container
"""


def cmd_bundle(args: argparse.Namespace, settings: Settings) -> int:
    from exporters.bundle import VerifySpec, build_bundle

    options: dict = {}
    if args.target == "lambda":
        options = {
            "max_unzipped_mb": args.max_unzipped_mb,
            "memory": args.memory,
            "timeout": args.timeout,
            "allow_version_drift": args.allow_version_drift,
            "smoke": not args.no_smoke,
        }
    elif args.allow_version_drift:
        print(
            f"note: --allow-version-drift changes nothing for --target {args.target}: its "
            "requirements.txt pins the backtest's exact versions"
        )
    if args.target == "azure":
        options["clock"] = args.azure_clock
    if args.force and not args.verify:
        raise ValueError("--force only applies with --verify (it ships a failed certificate)")
    verify = None
    if args.verify:
        verify = VerifySpec(
            source=args.source,
            start=args.start,
            end=args.end,
            symbols=parse_symbols(args.symbols),
            force=args.force,
        )

    def build(forecaster=None):
        return build_bundle(
            args.target,
            args.module,
            args.out,
            python=args.python,
            late_after=args.late_after,
            verify=verify,
            forecaster=forecaster,
            **options,
        )

    if verify is not None:
        if getattr(args, "fitter", None) is None and Path(args.module).is_file():
            # the backtest fits as the module does
            from exporters.parity import module_constants

            args.fitter = getattr(module_constants(Path(args.module)), "FITTER", None)
        with open_forecaster(args, settings) as forecaster:
            result = build(forecaster)
    else:
        result = build()
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {len(result.files)} files to {result.out}")
    return 0


def register(sub: argparse._SubParsersAction, settings: Settings) -> None:
    parser = sub.add_parser(
        "bundle",
        help="package an exported module for AWS Lambda, Azure Functions or a container",
        description=HELP,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", required=True, choices=("lambda", "azure", "container"))
    parser.add_argument("--module", required=True, help="the exported FILE.py")
    parser.add_argument(
        "--out", required=True, help="folder for the bundle (new, empty, or a previous bundle)"
    )
    parser.add_argument(
        "--python",
        default=None,
        help="Python of the deployment (Lambda runtime pythonX.Y, base images, Azure runtime "
        "version). Default: Lambda, the newest runtime whose platform loads every pinned "
        "wheel (3.13, else 3.12, on Amazon Linux 2023); Azure and container 3.12. "
        "Lambda's 3.11 (Amazon Linux 2) needs --allow-version-drift",
    )
    parser.add_argument(
        "--allow-version-drift",
        action="store_true",
        help="Lambda: ship older versions than the backtest's where an exact pin has no wheel "
        "for the runtime (each difference printed and recorded in bundle.json); refused "
        "without it",
    )
    parser.add_argument(
        "--late-after",
        type=int,
        default=600,
        metavar="SECONDS",
        help="a run arriving later than this after its intended time only reconciles "
        "(TRADESHIP_LATE_AFTER_SECONDS; default 600)",
    )
    aws = parser.add_argument_group("lambda")
    aws.add_argument(
        "--max-unzipped-mb",
        type=float,
        default=250,
        help="refuse a zip larger than this unzipped (Lambda's limit: 250)",
    )
    aws.add_argument("--memory", type=int, default=2048, help="function memory in MB (2048)")
    aws.add_argument("--timeout", type=int, default=300, help="function timeout in s (300)")
    aws.add_argument(
        "--no-smoke",
        action="store_true",
        help="skip importing and fitting Prophet from the trimmed package (python -I -S)",
    )
    azure = parser.add_argument_group("azure")
    azure.add_argument(
        "--azure-clock",
        choices=("new-york", "utc"),
        default="new-york",
        help="new-york: NCRONTAB read in WEBSITE_TIME_ZONE=America/New_York (Linux Premium "
        "and Dedicated plans); utc: for Linux Consumption/Flex Consumption, which ignore "
        "WEBSITE_TIME_ZONE",
    )
    cert = parser.add_argument_group(
        "parity certificate",
        "--verify backtests the module on --source/--start/--end, replays every decision "
        "through the bundle's own files under the target's Python (-I -S, nothing else on "
        "the path) and writes the certificate into bundle.json; mismatches refuse the bundle",
    )
    cert.add_argument("--verify", action="store_true", help="certify the bundle (see above)")
    cert.add_argument(
        "--force",
        action="store_true",
        help="keep a bundle whose certificate shows mismatches (recorded as forced)",
    )
    add_data_options(cert, settings)
    add_forecast_options(cert)
    parser.set_defaults(func=cmd_bundle)
