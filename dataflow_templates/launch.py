"""The Flex Template entry point: run one Sluice pipeline from template parameters.

    (launcher)  python /sluice/dataflow_templates/launch.py --input=... --write_documents=true ...
    (finalize)  python -m dataflow_templates.launch --pipeline=mono --dataflow_job_id=JOB --input=... ...
    (check)     python -m dataflow_templates.launch --pipeline=mono --check_if_changed --input=... ...

The launcher passes every parameter as ``--name=value``, which a switch (``--write_documents``) or
a ``--near_dedup/--no-near_dedup`` pair cannot take, so ``true``/``false`` values are turned back
into the pipeline's own flags first. A template launch must not wait for its job (the launcher has a
launch timeout), so without ``--dataflow_job_id`` the driver submits and stops (submit mode); the
DAG's finalize step reruns the same parameters with the job id once the job succeeded, and the
driver then takes the job's counters from the Dataflow API and publishes the version.

``--check_if_changed`` runs nothing: the driver computes its config and input fingerprints and
compares them with the newest published version of the dataset (``pipelines/fingerprints.py``),
prints one JSON line ``{"changed", "same_as", "config_fingerprint", "input_fingerprint"}`` and
writes it to /airflow/xcom/return.json where that folder exists (``$SLUICE_XCOM_DIR`` overrides it),
so a DAG's check task can skip an unchanged dataset's tasks; exit 0 either way.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

if __package__ in (None, ""):  # run as a file by the launcher: the repository root is one up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines import fingerprints  # noqa: E402
from pipelines.driver import UsageError, run_main  # noqa: E402
from pipelines.run import RunMode  # noqa: E402

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def pipeline_parser(module, argv):
    """The pipeline's parser for these parameters (the tokenizer's depends on --source)."""
    if module.__name__ == "pipelines.tokenizer":
        peek = argparse.ArgumentParser(add_help=False)
        peek.add_argument("--source")
        source = peek.parse_known_args(argv)[0].source
        return module.build_parser(source if source in module.SOURCES else None)
    return module.build_parser()


def translate(parser, argv: list[str]) -> list[str]:
    """``--flag=true|false`` -> the pipeline's switch spelling; every other argument unchanged."""
    switches = {}
    for action in parser._actions:
        if isinstance(action, argparse.BooleanOptionalAction):
            switches[action.option_strings[0]] = (action.option_strings[0], action.option_strings[1])
        elif isinstance(action, argparse._StoreTrueAction):
            switches[action.option_strings[0]] = (action.option_strings[0], None)
    out = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and name in switches:
            on, off = switches[name]
            if value.lower() in TRUE:
                out.append(on)
            elif value.lower() in FALSE:
                if off:
                    out.append(off)
            else:
                raise UsageError(f"{name}: expected true or false, got {value!r}")
        else:
            out.append(arg)
    return out


def check_if_changed(argv, module) -> None:
    """The pipeline's driver in check mode: it stops at its check; the JSON line is printed (by
    ``run_main``) and written as the pod's XCom."""
    try:
        module.main(argv, mode=RunMode("check"))
    except fingerprints.Checked as checked:
        fingerprints.write_xcom(str(checked))
        raise
    raise AssertionError("a check-only run always ends at its check")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--pipeline", default=os.environ.get("SLUICE_PIPELINE"))
    own.add_argument("--dataflow_job_id")
    own.add_argument("--check_if_changed", action="store_true")
    known, rest = own.parse_known_args(argv)
    if not known.pipeline:
        print("error: --pipeline: which pipeline (or $SLUICE_PIPELINE)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"pipelines.{known.pipeline}")
    try:
        rest = translate(pipeline_parser(module, rest), rest)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if known.check_if_changed:
        return run_main(check_if_changed, rest, module=module)
    mode = RunMode("finalize", known.dataflow_job_id) if known.dataflow_job_id else RunMode("submit")
    return module.run(rest, mode=mode)


if __name__ == "__main__":
    raise SystemExit(main())
