from protos.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    TRAIN: _ClassVar[JobKind]
    EXPORT: _ClassVar[JobKind]
    ACTIVATE: _ClassVar[JobKind]
    ROLLBACK: _ClassVar[JobKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    QUEUED: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    CANCELLED: _ClassVar[JobState]

class MissingMediaPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFUSE: _ClassVar[MissingMediaPolicy]
    DROP: _ClassVar[MissingMediaPolicy]
    KEEP_OLD: _ClassVar[MissingMediaPolicy]
JOB_KIND_UNSPECIFIED: JobKind
TRAIN: JobKind
EXPORT: JobKind
ACTIVATE: JobKind
ROLLBACK: JobKind
JOB_STATE_UNSPECIFIED: JobState
QUEUED: JobState
RUNNING: JobState
SUCCEEDED: JobState
FAILED: JobState
CANCELLED: JobState
REFUSE: MissingMediaPolicy
DROP: MissingMediaPolicy
KEEP_OLD: MissingMediaPolicy

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Threshold(_message.Message):
    __slots__ = ("far", "threshold", "frr")
    FAR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FRR_FIELD_NUMBER: _ClassVar[int]
    far: float
    threshold: float
    frr: float
    def __init__(self, far: _Optional[float] = ..., threshold: _Optional[float] = ..., frr: _Optional[float] = ...) -> None: ...

class ParityCheck(_message.Message):
    __slots__ = ("check", "max_abs_diff", "min_cosine", "cases")
    CHECK_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_DIFF_FIELD_NUMBER: _ClassVar[int]
    MIN_COSINE_FIELD_NUMBER: _ClassVar[int]
    CASES_FIELD_NUMBER: _ClassVar[int]
    check: str
    max_abs_diff: float
    min_cosine: float
    cases: int
    def __init__(self, check: _Optional[str] = ..., max_abs_diff: _Optional[float] = ..., min_cosine: _Optional[float] = ..., cases: _Optional[int] = ...) -> None: ...

class ModelVersionInfo(_message.Message):
    __slots__ = ("model", "modality", "embedding_dim", "provenance", "license", "parity", "calibrated", "eer", "thresholds", "dev_trials", "description", "robustness")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    PARITY_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_FIELD_NUMBER: _ClassVar[int]
    EER_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    DEV_TRIALS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ROBUSTNESS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    modality: str
    embedding_dim: int
    provenance: str
    license: str
    parity: _containers.RepeatedCompositeFieldContainer[ParityCheck]
    calibrated: bool
    eer: float
    thresholds: _containers.RepeatedCompositeFieldContainer[Threshold]
    dev_trials: str
    description: str
    robustness: Robustness
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., modality: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., provenance: _Optional[str] = ..., license: _Optional[str] = ..., parity: _Optional[_Iterable[_Union[ParityCheck, _Mapping]]] = ..., calibrated: _Optional[bool] = ..., eer: _Optional[float] = ..., thresholds: _Optional[_Iterable[_Union[Threshold, _Mapping]]] = ..., dev_trials: _Optional[str] = ..., description: _Optional[str] = ..., robustness: _Optional[_Union[Robustness, _Mapping]] = ...) -> None: ...

class RobustnessPoint(_message.Message):
    __slots__ = ("eps", "budget", "trials", "successes", "success_rate", "median_snr_db")
    EPS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_SNR_DB_FIELD_NUMBER: _ClassVar[int]
    eps: float
    budget: int
    trials: int
    successes: int
    success_rate: float
    median_snr_db: float
    def __init__(self, eps: _Optional[float] = ..., budget: _Optional[int] = ..., trials: _Optional[int] = ..., successes: _Optional[int] = ..., success_rate: _Optional[float] = ..., median_snr_db: _Optional[float] = ...) -> None: ...

class Robustness(_message.Message):
    __slots__ = ("attack", "threshold", "far", "kappa", "dev_trials", "points", "built")
    ATTACK_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FAR_FIELD_NUMBER: _ClassVar[int]
    KAPPA_FIELD_NUMBER: _ClassVar[int]
    DEV_TRIALS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BUILT_FIELD_NUMBER: _ClassVar[int]
    attack: str
    threshold: float
    far: float
    kappa: float
    dev_trials: str
    points: _containers.RepeatedCompositeFieldContainer[RobustnessPoint]
    built: str
    def __init__(self, attack: _Optional[str] = ..., threshold: _Optional[float] = ..., far: _Optional[float] = ..., kappa: _Optional[float] = ..., dev_trials: _Optional[str] = ..., points: _Optional[_Iterable[_Union[RobustnessPoint, _Mapping]]] = ..., built: _Optional[str] = ...) -> None: ...

class ActiveModel(_message.Message):
    __slots__ = ("modality", "model")
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    modality: str
    model: _common_pb2.ModelRef
    def __init__(self, modality: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "active")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelVersionInfo]
    active: _containers.RepeatedCompositeFieldContainer[ActiveModel]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelVersionInfo, _Mapping]]] = ..., active: _Optional[_Iterable[_Union[ActiveModel, _Mapping]]] = ...) -> None: ...

class StartTrainingRequest(_message.Message):
    __slots__ = ("recipe_name", "recipe_yaml", "overrides", "processes", "name")
    RECIPE_NAME_FIELD_NUMBER: _ClassVar[int]
    RECIPE_YAML_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    recipe_name: str
    recipe_yaml: str
    overrides: _containers.RepeatedScalarFieldContainer[str]
    processes: int
    name: str
    def __init__(self, recipe_name: _Optional[str] = ..., recipe_yaml: _Optional[str] = ..., overrides: _Optional[_Iterable[str]] = ..., processes: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "kind", "state", "name", "recipe_kind", "run_dir", "step", "total_steps", "loss", "lr", "items_per_second", "eta_seconds", "metrics", "error", "created_at", "started_at", "finished_at", "last_sequence", "model", "log_path", "attempts", "queue_position", "source_job")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RECIPE_KIND_FIELD_NUMBER: _ClassVar[int]
    RUN_DIR_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    ITEMS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LOG_PATH_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_JOB_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: JobKind
    state: JobState
    name: str
    recipe_kind: str
    run_dir: str
    step: int
    total_steps: int
    loss: float
    lr: float
    items_per_second: float
    eta_seconds: float
    metrics: _containers.ScalarMap[str, float]
    error: str
    created_at: float
    started_at: float
    finished_at: float
    last_sequence: int
    model: _common_pb2.ModelRef
    log_path: str
    attempts: int
    queue_position: int
    source_job: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., name: _Optional[str] = ..., recipe_kind: _Optional[str] = ..., run_dir: _Optional[str] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., lr: _Optional[float] = ..., items_per_second: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., error: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., last_sequence: _Optional[int] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., log_path: _Optional[str] = ..., attempts: _Optional[int] = ..., queue_position: _Optional[int] = ..., source_job: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("sequence", "at", "message", "job")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    at: float
    message: str
    job: Job
    def __init__(self, sequence: _Optional[int] = ..., at: _Optional[float] = ..., message: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "after_sequence")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_sequence: int
    def __init__(self, job_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("job_id", "run_dir", "name", "detach")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_DIR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    run_dir: str
    name: str
    detach: bool
    def __init__(self, job_id: _Optional[str] = ..., run_dir: _Optional[str] = ..., name: _Optional[str] = ..., detach: _Optional[bool] = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ("job", "published")
    JOB_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    job: Job
    published: ModelVersionInfo
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., published: _Optional[_Union[ModelVersionInfo, _Mapping]] = ...) -> None: ...

class ActivateRequest(_message.Message):
    __slots__ = ("modality", "model", "version", "missing_media", "detach")
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MISSING_MEDIA_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    modality: str
    model: str
    version: int
    missing_media: MissingMediaPolicy
    detach: bool
    def __init__(self, modality: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., missing_media: _Optional[_Union[MissingMediaPolicy, str]] = ..., detach: _Optional[bool] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("modality", "missing_media")
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    MISSING_MEDIA_FIELD_NUMBER: _ClassVar[int]
    modality: str
    missing_media: MissingMediaPolicy
    def __init__(self, modality: _Optional[str] = ..., missing_media: _Optional[_Union[MissingMediaPolicy, str]] = ...) -> None: ...

class ActivationReport(_message.Message):
    __slots__ = ("modality", "from_model", "to_model", "identities", "reembedded", "samples", "changes_replayed", "dropped", "kept_on_old", "without_media", "seconds", "writes_paused_seconds", "report_json", "report_path")
    class WithoutMediaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    FROM_MODEL_FIELD_NUMBER: _ClassVar[int]
    TO_MODEL_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    REEMBEDDED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    CHANGES_REPLAYED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    KEPT_ON_OLD_FIELD_NUMBER: _ClassVar[int]
    WITHOUT_MEDIA_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    WRITES_PAUSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    REPORT_PATH_FIELD_NUMBER: _ClassVar[int]
    modality: str
    from_model: _common_pb2.ModelRef
    to_model: _common_pb2.ModelRef
    identities: int
    reembedded: int
    samples: int
    changes_replayed: int
    dropped: _containers.RepeatedScalarFieldContainer[str]
    kept_on_old: _containers.RepeatedScalarFieldContainer[str]
    without_media: _containers.ScalarMap[str, str]
    seconds: float
    writes_paused_seconds: float
    report_json: str
    report_path: str
    def __init__(self, modality: _Optional[str] = ..., from_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., to_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., identities: _Optional[int] = ..., reembedded: _Optional[int] = ..., samples: _Optional[int] = ..., changes_replayed: _Optional[int] = ..., dropped: _Optional[_Iterable[str]] = ..., kept_on_old: _Optional[_Iterable[str]] = ..., without_media: _Optional[_Mapping[str, str]] = ..., seconds: _Optional[float] = ..., writes_paused_seconds: _Optional[float] = ..., report_json: _Optional[str] = ..., report_path: _Optional[str] = ...) -> None: ...

class ActivationResponse(_message.Message):
    __slots__ = ("job", "report")
    JOB_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    job: Job
    report: ActivationReport
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., report: _Optional[_Union[ActivationReport, _Mapping]] = ...) -> None: ...

class PurgeRequest(_message.Message):
    __slots__ = ("modality",)
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    modality: str
    def __init__(self, modality: _Optional[str] = ...) -> None: ...

class PurgeResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: _common_pb2.ModelRef
    def __init__(self, purged: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...
