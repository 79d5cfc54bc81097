"""Policy validation: every error names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.policy import PolicyError, load_documents, load_path

VALID = """\
providers:
  openai: {kind: openai, api_key: env:OPENAI_API_KEY}
  demo: {kind: mock}
models:
  gpt-4o-mini: {targets: [{provider: openai}]}
  smart:
    targets:
      - {provider: openai, model: gpt-4o}
      - {provider: demo}
    timeout: 30s
"""


def _errors(text: str, name: str = "policy.yaml") -> list[str]:
    with pytest.raises(PolicyError) as raised:
        load_documents({name: text})
    return [str(issue) for issue in raised.value.issues]


def test_a_valid_policy_loads_with_defaults() -> None:
    policy = load_documents({"p.yaml": VALID})
    assert sorted(policy.models) == ["gpt-4o-mini", "smart"]
    assert policy.models["smart"].timeout == 30.0
    assert policy.defaults.fallback_on == ["429", "5xx", "timeout", "connect-failure", "reset"]


@pytest.mark.parametrize(("text", "expected"), [
    (VALID.replace("{provider: demo}", "{provider: anthropic}"),
     "policy.yaml:9: models.smart.targets[1].provider: unknown provider 'anthropic' "
     "(defined: demo, openai)"),
    (VALID.replace("timeout: 30s", "timeout: soon"),
     "policy.yaml:10: models.smart.timeout: expected a duration such as 500ms, 30s or 5m, "
     "got 'soon'"),
    (VALID.replace("api_key: env:OPENAI_API_KEY", "apikey: env:X"),
     "policy.yaml:2: providers.openai.apikey: Extra inputs are not permitted"),
    (VALID.replace("api_key: env:OPENAI_API_KEY", "api_key: sk-live-123"),
     "policy.yaml:2: providers.openai.api_key: a credential must be a reference: "
     "env:VARIABLE, file:/absolute/path or secret:NAME/KEY (never the key itself)"),
    (VALID.replace("{kind: mock}", "{kind: telepathy}"),
     "policy.yaml:3: providers.demo: Input tag 'telepathy' found using 'kind' does not match "
     "any of the expected tags: 'openai', 'anthropic', 'azure-openai', 'bedrock', 'gemini', "
     "'vertex', 'mock'"),
    (VALID.replace("targets: [{provider: openai}]", "targets: []"),
     "policy.yaml:5: models.gpt-4o-mini.targets: List should have at least 1 item after "
     "validation, not 0"),
    (VALID + "budgetz: {}\n", "policy.yaml:11: budgetz: Extra inputs are not permitted"),
    ("models: [1, 2]\n", "policy.yaml:1: models: Input should be a valid dictionary"),
    ("providers: {a: {kind: openai}\n", "policy.yaml:2: invalid YAML: expected ',' or '}', "
                                        "but got '<stream end>'"),
])
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    assert _errors(text) == [expected]


def test_a_model_defined_in_two_files_names_both() -> None:
    other = "models:\n  smart: {targets: [{provider: demo}]}\n"
    with pytest.raises(PolicyError) as raised:
        load_documents({"org.yaml": VALID, "team.yaml": other})
    assert [str(i) for i in raised.value.issues] == [
        "team.yaml:2: models.smart: defined twice (first at org.yaml:6)"]


def test_files_of_a_directory_merge(tmp_path: Path) -> None:
    (tmp_path / "providers.yaml").write_text(VALID.split("models:", maxsplit=1)[0])
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "models.yml").write_text("models:" + VALID.split("models:")[1])
    (tmp_path / ".hidden.yaml").write_text("this is: [not valid")
    (tmp_path / "notes.txt").write_text("ignored")
    assert sorted(load_path(tmp_path).models) == ["gpt-4o-mini", "smart"]


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file or directory"):
        load_path(tmp_path / "absent.yaml")


def test_a_scalar_keeps_its_own_type_wherever_the_same_text_appears() -> None:
    policy = load_documents({"p.yaml": VALID + """\
  "3": {targets: [{provider: demo, model: "3"}], retries: 3, timeout: 3}
  true-model: {targets: [{provider: demo, model: "true"}]}
"""})
    assert policy.models["3"].targets[0].model == "3"
    assert policy.models["3"].retries == 3
    assert policy.models["3"].timeout == 3.0
    assert policy.models["true-model"].targets[0].model == "true"
