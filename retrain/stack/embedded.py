"""The embedded local AWS stack: one call starts it, one call stops it, all on loopback.

- a moto server (in this process, on a thread) with S3, Step Functions executing the real ASL,
  Lambda, EventBridge, IAM, SSM and Secrets Manager, provisioned from template.yaml;
- moto's Lambda invocations routed in-process to the handlers in ``functions/``, its Step Functions
  context object's start time given as AWS gives it (:mod:`retrain.stack.sfn_context`), and nested
  executions run as on AWS (:mod:`retrain.stack.sfn_nested`);
- a real MLflow tracking server (child process): SQLite backend in the state folder, artifacts
  proxied into the moto bucket under ``mlflow/``;
- the sample OHLCV uploaded to the bucket under the key layout of :mod:`common.core.keys`.

moto keeps its state in memory; the state folder keeps the bucket's objects across restarts
(written on a clean stop, restored on start) so MLflow's database and its artifacts stay consistent.

The functions get the whole configuration of the process that starts the stack, as the template gives it
to them on AWS: a variable the template fills from a parameter (``RETRAIN_INTERVAL: !Ref Interval``) takes
the user's value as that parameter's override, validated against the parameter's constraints, and every
other ``RETRAIN_*`` variable passes through unchanged. Only the settings in :data:`STACK_OWNED_SETTINGS`
are the stack's own (they name its bucket, state machine and MLflow server); the market-data provider
defaults to ``replay`` of the sample data unless the user chose one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from common.aws.storage import S3ObjectStore
from common.core.errors import ConfigurationError, RetrainError
from common.core.keys import MLFLOW_ARTIFACTS_PREFIX
from common.core.settings import Settings, environment_variables, load_settings
from retrain.stack import lambda_router, sample_data, sfn_context, sfn_nested
from retrain.stack.config import LocalStackConfig
from retrain.stack.process import EnvironmentPatch
from retrain.stack.template import LocalResources, load_template, local_resources, parameter_variables

Progress = Callable[[str], None]

LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
STATE_FILE = "stack.json"

#: Settings the local stack gives its functions itself, whatever the environment says, and why.
STACK_OWNED_SETTINGS: dict[str, str] = {
    "data_bucket": "the stack's own bucket",
    "state_machine_arn": "the stack's own training state machine",
    "mlflow_tracking_uri": "the stack's own MLflow server",
}
#: Template parameters the stack sets from its own configuration, never from the functions' variables
#: (``Symbols`` comes from ``RETRAIN_SYMBOLS`` through :class:`LocalStackConfig`, which commands may narrow).
_STACK_PARAMETERS = frozenset({"Stage", "MlflowTrackingUri", "Symbols"})


def user_configuration(environ: Mapping[str, str]) -> dict[str, str]:
    """The retrain settings set in ``environ`` that reach the stack's functions as they are: each settings
    variable but those of :data:`STACK_OWNED_SETTINGS` and ``RETRAIN_SYMBOLS`` (the stack's own symbols,
    which a command may narrow to the ones it needs)."""
    found: dict[str, str] = {}
    for field_name in Settings.model_fields:
        if field_name in STACK_OWNED_SETTINGS or field_name == "symbols":
            continue
        for variable in environment_variables(Settings, field_name):
            if variable in environ:
                found[variable] = environ[variable]
    return found


def configuration_differences(started_with: Mapping[str, str], here: Mapping[str, str]) -> list[str]:
    """Settings variables whose value differs between a running stack's functions and this process."""

    def shown(value: str | None) -> str:
        return "unset" if value is None else repr(value)

    return [
        f"{name}: {shown(started_with.get(name))} for the stack's functions, {shown(here.get(name))} here"
        for name in sorted(set(started_with) | set(here))
        if started_with.get(name) != here.get(name)
    ]


def stack_owned_notes(environ: Mapping[str, str], given: Mapping[str, str] | None = None) -> list[str]:
    """A line for each stack-owned setting the user set that the functions do not get (``given``: the
    variables the stack sets for them; without it, any value the user set)."""
    notes = []
    for field_name, reason in STACK_OWNED_SETTINGS.items():
        variables = environment_variables(Settings, field_name)
        value_given = next((given[v] for v in variables if v in given), None) if given is not None else None
        for variable in variables:
            value = environ.get(variable)
            if value is not None and value != value_given:
                notes.append(f"{variable}={value} is not used by the local stack's functions: they use {reason}")
    return notes


def template_parameters(
    config: LocalStackConfig, environ: Mapping[str, str], mlflow_uri: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The template's parameter overrides for a local deployment, and the variable each came from.

    The stack sets the stage, its MLflow server and the symbols it seeded; each other parameter that a
    function's variable takes as it is (``RETRAIN_INTERVAL: !Ref Interval``) gets the user's value of that
    variable, as ``sam deploy --parameter-overrides`` would give it on AWS."""
    overrides = {"Stage": config.stage, "MlflowTrackingUri": mlflow_uri, "Symbols": ",".join(config.symbols)}
    sources: dict[str, str] = {}
    for variable, parameter in parameter_variables(load_template(config.template_path)).items():
        if parameter in _STACK_PARAMETERS or variable not in environ:
            continue
        if parameter in sources and overrides[parameter] != environ[variable]:
            raise ConfigurationError(
                f"{sources[parameter]} and {variable} both set the template parameter {parameter}, differently"
            )
        overrides[parameter], sources[parameter] = environ[variable], variable
    return overrides, sources


class StackError(RetrainError):
    """The local stack could not start or stop."""


def local_aws_environment(endpoint: str, region: str) -> dict[str, str]:
    """boto3 (and MLflow's S3 artifact client) pointed at the moto server, with dummy credentials."""
    return {
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on the port (connections lingering in TIME_WAIT do not count,
    as they do not stop the servers, which bind with SO_REUSEADDR, either)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def port_in_use_message(host: str, port: int, component: str) -> str:
    return (
        f"port {port} on {host} ({component}) is already in use: stop whatever listens there "
        f"(is a stack already up? `retrain status`) or choose another port with "
        f"RETRAIN_LOCAL_{component.upper()}_PORT=<port> (0 = any free port)"
    )


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class StackInfo:
    """What a client needs to use a running stack; persisted as ``<state_dir>/stack.json``."""

    pid: int
    host: str
    moto_port: int
    mlflow_port: int
    region: str
    bucket: str
    state_machines: dict[str, str]
    functions: dict[str, str]
    started_at: str
    state_dir: str
    mlflow_pid: int | None = None
    # The user's settings the functions were started with (user_configuration); None from an older stack.json.
    configuration: dict[str, str] | None = None

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.host}:{self.moto_port}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    def client_environment(self) -> dict[str, str]:
        """Environment that points boto3, MLflow and common.core.settings at this stack."""
        env = {
            **local_aws_environment(self.aws_endpoint, self.region),
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "RETRAIN_DATA_BUCKET": self.bucket,
        }
        if "TrainingStateMachine" in self.state_machines:
            env["RETRAIN_STATE_MACHINE_ARN"] = self.state_machines["TrainingStateMachine"]
        return env

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> StackInfo | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


_active_stack: EmbeddedStack | None = None


@dataclass
class EmbeddedStack:
    config: LocalStackConfig = field(default_factory=LocalStackConfig)
    progress: Progress = lambda message: None

    def __post_init__(self) -> None:
        self.resources: LocalResources | None = None
        self.info: StackInfo | None = None
        self.router: lambda_router.LambdaRouter | None = None
        self._moto: Any = None
        self._mlflow: subprocess.Popen[bytes] | None = None
        self._environment = EnvironmentPatch()

    # lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> StackInfo:
        global _active_stack
        if _active_stack is not None:
            raise StackError("an embedded stack already runs in this process (moto's state is process-global)")
        config = self.config
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
        load_settings()  # the functions' configuration, refused with the variable at fault before anything starts
        configuration = user_configuration(os.environ)
        state_dir = config.state_dir.resolve()
        state_dir.mkdir(parents=True, exist_ok=True)
        moto_port = self._claim_port("moto", config.moto_port)
        mlflow_port = self._claim_port("mlflow", config.mlflow_port) if config.with_mlflow else 0
        symbols = sample_data.check_symbols(config.sample_data_dir, config.symbols, config.interval)
        parameters, sources = template_parameters(config, os.environ, f"http://{config.host}:{mlflow_port}")
        resources = local_resources(
            config.template_path,
            parameters=parameters,
            parameter_sources=sources,
            region=config.region,
            stack_name=f"retrain-{config.stage}",
        )
        self.resources = resources
        _active_stack = self
        try:
            self._start_moto(moto_port)
            sfn_context.install()
            sfn_nested.install()
            self._apply_environment(resources, moto_port)
            if config.with_mlflow:
                self._spawn_mlflow(resources.bucket, mlflow_port, state_dir)
            self._provision(resources)
            self.router = lambda_router.LambdaRouter(resources.functions)
            lambda_router.install(self.router)
            restored = self._restore_bucket(resources.bucket, state_dir)
            seeded = sample_data.seed(
                S3ObjectStore(resources.bucket, self._client("s3")),
                config.sample_data_dir,
                symbols,
                until=config.sample_data_until,
            )
            self.progress(f"sample data: {seeded.summary()}; {restored} objects restored from {state_dir}")
            if config.with_mlflow:
                self._wait_for_mlflow(mlflow_port, state_dir)
        except BaseException:
            self.stop(save_state=False)
            raise
        self.info = StackInfo(
            pid=os.getpid(),
            host=config.host,
            moto_port=moto_port,
            mlflow_port=mlflow_port,
            region=config.region,
            bucket=resources.bucket,
            state_machines={m.logical_id: m.arn for m in resources.state_machines},
            functions={f.logical_id: f.name for f in resources.functions},
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            state_dir=str(state_dir),
            mlflow_pid=self._mlflow.pid if self._mlflow else None,
            configuration=configuration,
        )
        self._environment.set(self.info.client_environment())
        return self.info

    def stop(self, save_state: bool = True) -> None:
        """Stop everything this stack started; safe to call twice or after a failed start."""
        state_dir = self.config.state_dir.resolve()
        if save_state and self._moto is not None and self.resources is not None:
            with contextlib.suppress(Exception):
                self._snapshot_bucket(self.resources.bucket, state_dir)
        self._stop_mlflow()
        lambda_router.uninstall()
        sfn_context.uninstall()
        sfn_nested.uninstall()
        self.router = None
        if self._moto is not None:
            # moto's backends are process-global: reset them so a later start is a fresh account.
            with contextlib.suppress(httpx.HTTPError):
                host, port = self._moto.get_host_and_port()
                httpx.post(f"http://{host}:{port}/moto-api/reset", timeout=10)
            self._moto.stop()
            self._moto = None
        self._environment.restore()
        self.info = None
        global _active_stack
        if _active_stack is self:
            _active_stack = None

    # components ---------------------------------------------------------------------------------
    def _claim_port(self, component: str, port: int) -> int:
        host = self.config.host
        if port == 0:
            return free_port(host)
        if port_in_use(host, port):
            raise StackError(port_in_use_message(host, port, component))
        return port

    def _start_moto(self, port: int) -> None:
        from moto.server import ThreadedMotoServer

        self.progress(f"moto server on {self.config.host}:{port}")
        self._moto = ThreadedMotoServer(ip_address=self.config.host, port=port, verbose=False)
        self._moto.start()
        # The Step Functions interpreter calls Lambda at localhost:$MOTO_PORT.
        self._environment.set({"MOTO_PORT": str(port)})
        response = httpx.post(f"http://{self.config.host}:{port}/moto-api/config", json=_MOTO_CONFIG, timeout=10)
        response.raise_for_status()

    def _apply_environment(self, resources: LocalResources, moto_port: int) -> None:
        """What Lambda would give the handlers: the template's environment (with the user's values of the
        variables it fills from parameters) over this process's, plus local endpoints. Every other variable of
        the process, ``RETRAIN_*`` settings included, stays as the user set it."""
        merged: dict[str, str] = {}
        for function in resources.functions:
            for name, value in function.environment.items():
                if merged.get(name, value) != value:
                    raise ConfigurationError(
                        f"template: functions disagree on {name}; in-process handlers share one environment"
                    )
                merged[name] = value
        merged.update(
            {
                **local_aws_environment(f"http://{self.config.host}:{moto_port}", resources.region),
                "RETRAIN_SYMBOLS": ",".join(self.config.symbols),
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon on a laptop
                # Offline by default: ingestion replays the sample data unless a vendor is configured.
                "RETRAIN_MARKET_DATA_PROVIDER": os.environ.get("RETRAIN_MARKET_DATA_PROVIDER", "replay"),
                "RETRAIN_MARKET_DATA_REPLAY_DIR": os.environ.get(
                    "RETRAIN_MARKET_DATA_REPLAY_DIR", str(self.config.sample_data_dir.resolve())
                ),
            }
        )
        self._note_stack_owned(merged)
        self._environment.set(merged)
        self._environment.unset("AWS_PROFILE")  # a developer's profile must not win over the local credentials
        # RETRAIN_MLFLOW_TRACKING_URI is read before MLFLOW_TRACKING_URI: it must not point the functions elsewhere.
        self._environment.unset(*(v for v in environment_variables(Settings, "mlflow_tracking_uri") if v not in merged))

    def _note_stack_owned(self, merged: dict[str, str]) -> None:
        for note in stack_owned_notes(os.environ, merged):
            self.progress(note)

    def _client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=self.config.region)

    def _provision(self, resources: LocalResources) -> None:
        s3, iam = self._client("s3"), self._client("iam")
        s3.create_bucket(Bucket=resources.bucket)
        s3.put_bucket_versioning(Bucket=resources.bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=resources.bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_public_access_block(
            Bucket=resources.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True,
                "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
            },
        )  # fmt: skip
        role_arn = iam.create_role(
            RoleName=f"{resources.stack_name}-execution",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        awslambda, events = self._client("lambda"), self._client("events")
        for function in resources.functions:
            awslambda.create_function(
                FunctionName=function.name,
                Runtime="python3.13",
                Role=role_arn,
                Handler=function.handler,
                Code={"ZipFile": _placeholder_zip()},
                Environment={"Variables": function.environment},
                Timeout=900,
            )
            for index, schedule in enumerate(function.schedules):
                rule = f"{function.name}-schedule-{index}"
                events.put_rule(Name=rule, ScheduleExpression=schedule, State="ENABLED")
                events.put_targets(Rule=rule, Targets=[{"Id": function.logical_id, "Arn": function.arn}])
        sfn = self._client("stepfunctions")
        for machine in resources.state_machines:
            sfn.create_state_machine(name=machine.name, definition=machine.definition, roleArn=role_arn)
        # moto keeps the schedules but never fires them: the replay starts each day itself, as they would.
        scheduler = self._client("scheduler")
        for schedule in resources.schedules:
            scheduler.create_schedule(
                Name=schedule.name,
                ScheduleExpression=schedule.expression,
                FlexibleTimeWindow={"Mode": "OFF"},
                Target={"Arn": schedule.target_arn, "RoleArn": role_arn, "Input": schedule.input},
            )
        self.progress(
            f"provisioned bucket {resources.bucket}, {len(resources.functions)} functions, "
            f"{len(resources.state_machines)} state machine(s), {len(resources.schedules)} schedule(s) "
            f"from {self.config.template_path.name}"
        )

    def _spawn_mlflow(self, bucket: str, port: int, state_dir: Path) -> None:
        db = state_dir / "mlflow.db"
        if db.exists() and not (state_dir / "s3").exists():
            # Artifacts lived in a moto bucket that was not snapshotted (unclean stop): start afresh
            # rather than serve runs whose artifacts are gone.
            orphan = db.with_name(f"mlflow.db.orphaned-{int(time.time())}")
            db.rename(orphan)
            self.progress(f"MLflow database without its artifacts moved aside to {orphan.name}")
        env = dict(os.environ)  # _apply_environment already points S3 (artifacts) at moto
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{db}",
            "--artifacts-destination", f"s3://{bucket}/{MLFLOW_ARTIFACTS_PREFIX.rstrip('/')}",
            "--host", self.config.host, "--port", str(port), "--workers", "1",
        ]  # fmt: skip
        self.progress(f"MLflow server on {self.config.host}:{port} (log: {state_dir / 'mlflow.log'})")
        log = open(state_dir / "mlflow.log", "ab")  # noqa: SIM115 - handed to the child process
        self._mlflow = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()

    def _wait_for_mlflow(self, port: int, state_dir: Path) -> None:
        deadline = time.monotonic() + self.config.mlflow_start_timeout
        url = f"http://{self.config.host}:{port}/health"
        while time.monotonic() < deadline:
            assert self._mlflow is not None
            if self._mlflow.poll() is not None:
                tail = (state_dir / "mlflow.log").read_text(errors="replace")[-2000:]
                raise StackError(f"MLflow server exited with code {self._mlflow.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.25)
        raise StackError(f"MLflow server did not answer on {url} within {self.config.mlflow_start_timeout}s")

    def _stop_mlflow(self) -> None:
        process, self._mlflow = self._mlflow, None
        if process is None or process.poll() is not None:
            return
        # The server runs uvicorn/gunicorn workers in its own session: signal the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        # Workers may outlive their parent for a moment; make sure none is left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    # bucket persistence ---------------------------------------------------------------------------
    def _snapshot_bucket(self, bucket: str, state_dir: Path) -> None:
        s3 = self._client("s3")
        target = state_dir / "s3"
        staging = state_dir / "s3.partial"
        shutil.rmtree(staging, ignore_errors=True)
        for key in _list_keys(s3, bucket):
            path = staging / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        staging.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)

    def _restore_bucket(self, bucket: str, state_dir: Path) -> int:
        source = state_dir / "s3"
        if not source.is_dir():
            return 0
        s3 = self._client("s3")
        count = 0
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            s3.put_object(Bucket=bucket, Key=path.relative_to(source).as_posix(), Body=path.read_bytes())
            count += 1
        return count


def _list_keys(s3: Any, bucket: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            yield item["Key"]


def _placeholder_zip() -> bytes:
    """moto wants a code package; the router runs the real handler from the source tree instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "Routed in-process to functions/ by the embedded stack.\n")
    return buffer.getvalue()
