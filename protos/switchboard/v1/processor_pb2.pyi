from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessorConfig(_message.Message):
    __slots__ = ("providers", "models", "teams", "budgets", "prices", "state", "direct_forwarding")
    class ProvidersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Provider
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Provider, _Mapping]] = ...) -> None: ...
    class ModelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Model
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...
    class TeamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Team
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Team, _Mapping]] = ...) -> None: ...
    class BudgetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Budget
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Budget, _Mapping]] = ...) -> None: ...
    class PricesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Price
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Price, _Mapping]] = ...) -> None: ...
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    TEAMS_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DIRECT_FORWARDING_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.MessageMap[str, Provider]
    models: _containers.MessageMap[str, Model]
    teams: _containers.MessageMap[str, Team]
    budgets: _containers.MessageMap[str, Budget]
    prices: _containers.MessageMap[str, Price]
    state: State
    direct_forwarding: bool
    def __init__(self, providers: _Optional[_Mapping[str, Provider]] = ..., models: _Optional[_Mapping[str, Model]] = ..., teams: _Optional[_Mapping[str, Team]] = ..., budgets: _Optional[_Mapping[str, Budget]] = ..., prices: _Optional[_Mapping[str, Price]] = ..., state: _Optional[_Union[State, _Mapping]] = ..., direct_forwarding: _Optional[bool] = ...) -> None: ...

class Team(_message.Message):
    __slots__ = ("key_hashes", "models", "all_models", "rate_limit", "key_rate_limit")
    KEY_HASHES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ALL_MODELS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    KEY_RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    key_hashes: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedScalarFieldContainer[str]
    all_models: bool
    rate_limit: RateLimit
    key_rate_limit: RateLimit
    def __init__(self, key_hashes: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[str]] = ..., all_models: _Optional[bool] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ..., key_rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("requests_per_minute", "tokens_per_minute")
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    requests_per_minute: int
    tokens_per_minute: int
    def __init__(self, requests_per_minute: _Optional[int] = ..., tokens_per_minute: _Optional[int] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("limit_usd", "period", "timezone", "on_exceed", "downgrade_model", "match")
    LIMIT_USD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    ON_EXCEED_FIELD_NUMBER: _ClassVar[int]
    DOWNGRADE_MODEL_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    limit_usd: str
    period: str
    timezone: str
    on_exceed: str
    downgrade_model: str
    match: BudgetMatch
    def __init__(self, limit_usd: _Optional[str] = ..., period: _Optional[str] = ..., timezone: _Optional[str] = ..., on_exceed: _Optional[str] = ..., downgrade_model: _Optional[str] = ..., match: _Optional[_Union[BudgetMatch, _Mapping]] = ...) -> None: ...

class BudgetMatch(_message.Message):
    __slots__ = ("team", "key", "model", "provider")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    team: str
    key: str
    model: str
    provider: str
    def __init__(self, team: _Optional[str] = ..., key: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ...) -> None: ...

class Price(_message.Message):
    __slots__ = ("input_per_mtok", "output_per_mtok", "cached_read_per_mtok", "cache_write_per_mtok")
    INPUT_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CACHED_READ_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    input_per_mtok: str
    output_per_mtok: str
    cached_read_per_mtok: str
    cache_write_per_mtok: str
    def __init__(self, input_per_mtok: _Optional[str] = ..., output_per_mtok: _Optional[str] = ..., cached_read_per_mtok: _Optional[str] = ..., cache_write_per_mtok: _Optional[str] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("backend", "path", "url_ref", "usage_retention_s")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    URL_REF_FIELD_NUMBER: _ClassVar[int]
    USAGE_RETENTION_S_FIELD_NUMBER: _ClassVar[int]
    backend: str
    path: str
    url_ref: str
    usage_retention_s: int
    def __init__(self, backend: _Optional[str] = ..., path: _Optional[str] = ..., url_ref: _Optional[str] = ..., usage_retention_s: _Optional[int] = ...) -> None: ...

class Provider(_message.Message):
    __slots__ = ("kind", "base_url", "api_key_ref", "options", "credential_refs", "list_prices")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class CredentialRefsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_REFS_FIELD_NUMBER: _ClassVar[int]
    LIST_PRICES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    base_url: str
    api_key_ref: str
    options: _containers.ScalarMap[str, str]
    credential_refs: _containers.ScalarMap[str, str]
    list_prices: bool
    def __init__(self, kind: _Optional[str] = ..., base_url: _Optional[str] = ..., api_key_ref: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ..., credential_refs: _Optional[_Mapping[str, str]] = ..., list_prices: _Optional[bool] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("targets",)
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[Target]
    def __init__(self, targets: _Optional[_Iterable[_Union[Target, _Mapping]]] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("provider", "model")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...
