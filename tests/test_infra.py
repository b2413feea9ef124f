"""The deploy kit (azure.yaml, infra/) read as text: the Bicep compiler cannot run here (checkov
checks the templates in .ci/run; tests/test_hooks.py runs the hooks). These tests hold the
templates to the app: every app setting they set is one the app reads, every setting the app needs
is set, secrets stay secret, nothing lands outside the app's resource group, and what the alerts
read is what the app emits."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from tools.checkov_report import verdict
from triage.settings import MIN_LINK_KEY_CHARS, Settings

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
FUNCTION_BICEP = (INFRA / "app" / "function.bicep").read_text(encoding="utf-8")
MAIN_BICEP = (INFRA / "main.bicep").read_text(encoding="utf-8")
ALERTS_BICEP = (INFRA / "app" / "alerts.bicep").read_text(encoding="utf-8")
AZURE_YAML = (ROOT / "azure.yaml").read_text(encoding="utf-8")

# Settings the Functions host (not acs-triage) reads. Flex Consumption sets the runtime in
# functionAppConfig, and refuses FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION settings.
HOST_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
# Local-only settings: what Flex Consumption provides another way.
LOCAL_ONLY = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsFeatureFlags", "AzureWebJobsStorage"}
# What the app cannot run without in Azure. AzureWebJobsStorage is given in its identity form.
REQUIRED = {
    "AzureWebJobsStorage__accountName",
    "ACS_TRIAGE_OUTBOX_QUEUE",
    "ACS_TRIAGE_STORE",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
}
SECRET_SETTINGS = {
    "ACS_TRIAGE_TEAMS_URL": "teamsWebhookUrl",
    "ACS_TRIAGE_SLACK_URL": "slackWebhookUrl",
    "ACS_TRIAGE_PAGERDUTY_ROUTING_KEY": "pagerDutyRoutingKey",
    "ACS_TRIAGE_WEBHOOK_URL": "genericWebhookUrl",
    "ACS_TRIAGE_WEBHOOK_SECRET": "genericWebhookSecret",
    "ACS_TRIAGE_SILENCE_LINK_KEY": "silenceLinkKey",
}


def app_settings_read() -> set[str]:
    """The app's settings, from their one documented list, plus the host's own."""
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    return set(sample["Values"]) | HOST_SETTINGS


def _block(text: str, name: str) -> str:
    return text.split(f"// {name}: begin", 1)[1].split(f"// {name}: end", 1)[0]


def template_settings() -> dict[str, str]:
    """Setting name → the Bicep expression of its value, from function.bicep's settings block and
    main.bicep's block of the operator's settings."""
    found: dict[str, str] = {}
    for block in (_block(FUNCTION_BICEP, "app settings"), _block(MAIN_BICEP, "operator settings")):
        found |= dict(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*): ('[^\n]*'|[a-zA-Z][^\n}]*)", block))
    return found


def bicep_parameters(text: str) -> dict[str, str | None]:
    """Parameter name → its default (None: none), of a Bicep file."""
    return {
        name: default
        for name, default in re.findall(r"^param (\w+) \w+(?: = ([^\n]+))?$", text, re.MULTILINE)
    } | {name: None for name in re.findall(r"^param (\w+) \w+$", text, re.MULTILINE)}


def test_the_settings_block_is_found_and_applied() -> None:
    settings = template_settings()
    assert len(settings) >= 16
    assert (
        "union(baseSettings, callbackSettings, teamsSettings, slackSettings, pagerDutySettings, "
        "webhookSettings, webhookKeySettings, silenceSettings, operatorSettings)" in FUNCTION_BICEP
    )


OPERATOR_SETTINGS = {
    "ACS_TRIAGE_ROUTES": "routes",
    "ACS_TRIAGE_GROUP_WINDOW_SECONDS": "groupWindowSeconds",
    "ACS_TRIAGE_SEND_RESOLVED": "sendResolved",
    "ACS_TRIAGE_MASK_PII": "maskPii",
    "ACS_TRIAGE_REPORT_SCHEDULE": "reportSchedule",
    "ACS_TRIAGE_REPORT_TO": "reportTo",
}


@pytest.mark.parametrize("setting", sorted(OPERATOR_SETTINGS))
def test_the_operators_settings_survive_a_provision_through_the_azd_environment(setting: str) -> None:
    """Each `azd provision` replaces every app setting: what the operator owns comes from the azd
    environment variable of the same name, and is left unset (the app's default) when empty."""
    parameter = OPERATOR_SETTINGS[setting]
    assert f"empty({parameter}) ? {{}} : {{ {setting}: {parameter} }}" in MAIN_BICEP
    assert bicep_parameters(MAIN_BICEP)[parameter] == "''"
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters[parameter] == {"value": f"${{{setting}=}}"}


def test_every_parameter_without_a_default_is_given_by_azd_and_every_given_one_exists() -> None:
    declared = bicep_parameters(MAIN_BICEP)
    given = set(json.loads((INFRA / "main.parameters.json").read_text())["parameters"])
    assert given <= set(declared)
    assert {name for name, default in declared.items() if default is None} - given == set()


def test_every_setting_the_templates_set_is_one_the_app_or_host_reads() -> None:
    assert set(template_settings()) - app_settings_read() == set()


def test_every_setting_the_app_needs_is_set() -> None:
    assert set(REQUIRED) - set(template_settings()) == set()
    assert set(REQUIRED) <= app_settings_read() | HOST_SETTINGS
    assert set(OPERATOR_SETTINGS) <= app_settings_read()


def test_settings_the_app_reads_are_either_set_defaulted_or_local_only() -> None:
    """A setting missing from the templates must have a default in the app (the sample's value is
    what the app assumes) or be one Flex Consumption replaces."""
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    unset = set(sample) - set(template_settings()) - LOCAL_ONLY
    # Webhook URLs and the shared secret are optional by design, and the per-service storage URIs
    # are the alternative to the __accountName the templates set; everything else has a default.
    optional = {
        "ACS_TRIAGE_ROUTES_FILE",
        "ACS_TRIAGE_SHARED_SECRET",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        # a local stand-in for PagerDuty only; the daily report is off until a schedule is chosen
        "ACS_TRIAGE_PAGERDUTY_URL",
        "ACS_TRIAGE_REPORT_SCHEDULE",
        "ACS_TRIAGE_REPORT_TO",
        # routes' extras: unset, what no route takes goes everywhere and no route is muted;
        # the resolve period follows the group window (5 minutes with grouping off), and the
        # repeat interval is 4 h or a longer window (a value given would hold for every route)
        "ACS_TRIAGE_DEFAULT_ROUTE",
        "ACS_TRIAGE_TIME_INTERVALS",
        "ACS_TRIAGE_INHIBIT_RULES",
        "ACS_TRIAGE_RESOLVE_AFTER_SECONDS",
        "ACS_TRIAGE_REPEAT_INTERVAL_SECONDS",
    }
    assert {name for name in unset if sample[name] == ""} - optional - set(SECRET_SETTINGS) == set()


def test_the_outbox_queue_name_is_derived_from_the_app_name_and_created() -> None:
    assert template_settings()["ACS_TRIAGE_OUTBOX_QUEUE"] == "outboxQueueName"
    assert "outboxQueueName: '${appName}-outbox'" in MAIN_BICEP
    assert "queueNames: ['${appName}-outbox', '${appName}-outbox-poison']" in MAIN_BICEP
    # Queue names: lower-case letters, digits and single hyphens; the app name is built of those.
    app_name = re.search(r"var appName = '([^']+)'", MAIN_BICEP)
    assert app_name is not None
    assert re.fullmatch(r"[a-z0-9-]+\$\{resourceToken\}", app_name.group(1))
    assert "var resourceToken = toLower(uniqueString(" in MAIN_BICEP


@pytest.mark.parametrize("setting", sorted(SECRET_SETTINGS))
def test_webhook_urls_are_key_vault_references_to_secure_parameters(setting: str) -> None:
    value = template_settings()[setting]
    assert value.startswith("'@Microsoft.KeyVault(SecretUri=${")
    parameter = SECRET_SETTINGS[setting]
    assert re.search(rf"@secure\(\)\n(@description\([^\n]*\)\n)?param {parameter} string = ''", MAIN_BICEP)
    # The URL itself goes to Key Vault only, never into an app setting or an output.
    assert parameter not in FUNCTION_BICEP
    assert not re.search(rf"output [^\n]*{parameter}", MAIN_BICEP)
    assert "keyVaultReferenceIdentity: identity.id" in FUNCTION_BICEP


HOST_NAME = "func-acstriage-abc123.azurewebsites.net"  # what the platform gives as defaultHostName


def provisioned_settings(parameters: dict[str, str]) -> dict[str, str]:
    """The conditional app settings a provision with these main.bicep parameters leaves (every
    other secure parameter empty), as the app reads them once Key Vault references are resolved.

    Follows the templates' own wiring: main.bicep stores each non-empty secret in the vault and
    hands function.bicep the secret's URI only when the parameter is set; function.bicep adds a
    group of settings only when that URI is given."""
    vault_secrets = dict(re.findall(r"^      '([a-z-]+)': (\w+)$", MAIN_BICEP, re.M))
    uris = {
        uri: (parameter, secret)
        for uri, parameter, secret in re.findall(
            r"^    (\w+SecretUri): empty\((\w+)\) \? '' : '\$\{vault\.outputs\.secretsUri\}([a-z-]+)'$",
            MAIN_BICEP,
            re.M,
        )
    }
    keyvault = (INFRA / "core" / "keyvault.bicep").read_text(encoding="utf-8")
    assert "[for item in items(secrets): if (!empty(item.value)) {" in keyvault
    applied = FUNCTION_BICEP.split("properties: union(", 1)[1].split(")", 1)[0].split(", ")
    found: dict[str, str] = {}
    block = _block(FUNCTION_BICEP, "app settings")
    for var, uri, body in re.findall(r"^var (\w+) = empty\((\w+)\) \? \{\} : \{(.*?)\}$", block, re.M | re.S):
        if uri not in uris or not parameters.get(uris[uri][0]):
            continue
        assert var in applied, f"{var} is never applied"
        parameter, secret = uris[uri]
        assert vault_secrets[secret] == parameter, f"{uri} names a secret that holds another parameter"
        for setting, expression in re.findall(r"\b([A-Z][A-Z0-9_]*): '([^'\n]*)'", body):
            reference = re.fullmatch(r"@Microsoft\.KeyVault\(SecretUri=\$\{(\w+)\}\)", expression)
            value = parameters[vault_secrets[uris[reference.group(1)][1]]] if reference else expression
            value = value.replace("${site.properties.defaultHostName}", HOST_NAME)
            assert "${" not in value, f"{setting}: {value} is not modelled here"
            found[setting] = value
    return found


@pytest.mark.parametrize("setting", sorted(SECRET_SETTINGS))
def test_a_secret_reaches_the_app_through_key_vault_only_when_its_parameter_is_set(setting: str) -> None:
    parameter = SECRET_SETTINGS[setting]
    value = f"the value of {parameter}"
    assert provisioned_settings({parameter: value})[setting] == value
    assert setting not in provisioned_settings({parameter: ""})
    assert setting not in provisioned_settings(
        {other: "set" for other in SECRET_SETTINGS.values() if other != parameter}
    )
    # azd takes it from the environment variable of the setting's own name; unset: empty.
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters[parameter] == {"value": f"${{{setting}=}}"}


def test_silence_links_work_after_a_provision_with_the_key_and_are_off_without_it() -> None:
    """`azd env set ACS_TRIAGE_SILENCE_LINK_KEY "$(openssl rand -base64 48)"`: the key goes to Key
    Vault, and the app gets it with its own public address; the two are both or neither, as the
    app requires."""
    key = base64.b64encode(secrets.token_bytes(48)).decode()  # what `openssl rand -base64 48` gives
    given = provisioned_settings({"silenceLinkKey": key})
    assert given == {"ACS_TRIAGE_SILENCE_LINK_KEY": key, "ACS_TRIAGE_PUBLIC_URL": f"https://{HOST_NAME}"}
    settings, problems = Settings.read(given)
    assert problems == [] and settings is not None
    links = settings.silence_links()
    assert links is not None and links.public_url == f"https://{HOST_NAME}"
    assert provisioned_settings({"silenceLinkKey": ""}) == {}
    assert Settings.read(provisioned_settings({"silenceLinkKey": ""}))[1] == []
    # The address is the one Azure gives the app (which may carry a random suffix and a region),
    # the same one azd reports, never one built from the app's name.
    assert "output defaultHostName string = site.properties.defaultHostName" in FUNCTION_BICEP
    assert "output AZURE_FUNCTION_APP_HOSTNAME string = app.outputs.defaultHostName" in MAIN_BICEP


def test_the_secure_parameters_describe_the_keys_the_app_takes() -> None:
    descriptions = {
        name: text
        for text, name in re.findall(r"^@description\('((?:[^'\\]|\\.)*)'\)\nparam (\w+) ", MAIN_BICEP, re.M)
    }
    link_key = descriptions["silenceLinkKey"]
    assert f"at least {MIN_LINK_KEY_CHARS} random characters" in link_key
    assert "openssl rand -base64 48" in link_key and "ACS_TRIAGE_PUBLIC_URL" in link_key
    # The generic webhook signs as Standard Webhooks: its key is a whsec_ one (docs/webhook.md).
    webhook_key = descriptions["genericWebhookSecret"]
    assert "whsec_" in webhook_key and "docs/webhook.md" in webhook_key
    assert "whsec_" in (ROOT / "docs" / "webhook.md").read_text(encoding="utf-8")


def test_the_vault_labels_urls_as_urls_and_keys_as_text() -> None:
    keyvault = (INFRA / "core" / "keyvault.bicep").read_text(encoding="utf-8")
    assert "contentType: endsWith(item.key, '-url') ? 'text/uri-list' : 'text/plain'" in keyvault
    vault_secrets = re.findall(r"^      '([a-z-]+)': (\w+)$", MAIN_BICEP, re.M)
    assert len(vault_secrets) == len(SECRET_SETTINGS)
    for secret, parameter in vault_secrets:
        assert secret.endswith("-url") == parameter.endswith("Url"), secret


def test_storage_is_reached_by_identity_with_shared_keys_off() -> None:
    storage = (INFRA / "core" / "storage.bicep").read_text(encoding="utf-8")
    assert "allowSharedKeyAccess: false" in storage
    assert "AzureWebJobsStorage__credential: 'managedidentity'" in FUNCTION_BICEP
    assert not re.search(r"AccountKey|listKeys|connectionString", FUNCTION_BICEP + storage)
    rbac = (INFRA / "app" / "rbac.bicep").read_text(encoding="utf-8")
    for role in ("storageBlobDataOwner", "storageQueueDataContributor", "storageTableDataContributor"):
        assert role in rbac.split("resource storageRoles", 1)[1].split("\n", 1)[0]
    assert "keyVaultSecretsUser" in rbac


def test_the_function_app_is_flex_consumption_linux_on_the_python_whose_worker_is_tested() -> None:
    assert "sku: { name: 'FC1', tier: 'FlexConsumption' }" in FUNCTION_BICEP
    assert "kind: 'functionapp,linux'" in FUNCTION_BICEP
    version = re.search(r"runtime: \{ name: 'python', version: '([\d.]+)' \}", FUNCTION_BICEP)
    assert version is not None and version.group(1) == "3.13"
    # On 3.13 the worker comes from requirements.txt: pinned, and the one tests/test_worker.py runs.
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r'^azure-functions-runtime==[\d.]+; python_version >= "3\.13"$', requirements, re.M)
    assert re.search(r'^azure-functions>=2[^;]*; python_version >= "3\.13"$', requirements, re.M)


def test_nothing_is_deployed_outside_the_apps_resource_group() -> None:
    """`azd down` deletes every resource group a deployment put a resource in: the ACS resource's
    must never be one (the hooks make the Event Grid topic and subscription there instead)."""
    modules = re.findall(r"^module \w+ '[^']+' = \{\n(?:  [^\n]*\n)*?  scope: ([^\n]+)", MAIN_BICEP, re.M)
    assert len(modules) == len(re.findall(r"^module ", MAIN_BICEP, re.M)) >= 6
    assert set(modules) == {"rg"}
    resources = re.findall(r"^resource \w+ '([^']+)' = ", MAIN_BICEP, re.M)
    assert resources == ["Microsoft.Resources/resourceGroups@2024-03-01"]
    for path in INFRA.rglob("*.bicep"):
        assert "Microsoft.EventGrid" not in path.read_text(), path
    # The ACS resource is read (its immutable id), never deployed.
    assert re.search(r"^resource acs '[^']+' existing = \{", MAIN_BICEP, re.M)


def test_a_down_and_up_gets_a_vault_of_another_name_and_purge_protection_stays_on() -> None:
    vault = (INFRA / "core" / "keyvault.bicep").read_text()
    assert "enablePurgeProtection: true" in vault
    seeds = "subscription().id, environmentName, location, vaultGeneration"
    assert f"var vaultToken = toLower(uniqueString({seeds}))" in MAIN_BICEP
    name = re.search(r"name: '(kv-[^']+)'", MAIN_BICEP)
    assert name is not None and "vaultToken" in name.group(1)
    # Key Vault names: 3-24 characters; the token is 13, the name takes 11 of them.
    assert len(name.group(1).replace("${take(vaultToken, 11)}", "x" * 11)) <= 24
    assert "ACS_TRIAGE_VAULT_GENERATION" in (ROOT / "scripts" / "predown.sh").read_text()


def test_events_event_grid_gives_up_on_are_dead_lettered_to_the_apps_storage() -> None:
    storage = (INFRA / "core" / "storage.bicep").read_text()
    assert "resource deadLetterContainer " in storage
    container = "'${storage.outputs.id}/blobServices/default/containers/${deadLetterContainerName}'"
    assert f"output ACS_TRIAGE_DEADLETTER_CONTAINER_ID string = {container}" in MAIN_BICEP
    hook = (ROOT / "scripts" / "postdeploy.sh").read_text()
    endpoint = '--deadletter-identity-endpoint "$ACS_TRIAGE_DEADLETTER_CONTAINER_ID"'
    assert f"--deadletter-identity systemassigned {endpoint}" in hook


def test_the_poison_alert_reads_the_metric_and_outcome_the_app_emits() -> None:
    telemetry = (ROOT / "triage" / "telemetry.py").read_text()
    query = re.search(r"query: '([^\n]+)'", ALERTS_BICEP)
    assert query is not None
    metric = re.search(r'name == "([^"]+)"', query.group(1))
    outcome = re.search(r'outcome\) == "([^"]+)"', query.group(1))
    assert metric is not None and outcome is not None
    assert f'"{metric.group(1)}"' in telemetry
    assert outcome.group(1) in re.search(r"acs_triage.deliveries[^\n]*", telemetry).group(0)  # type: ignore[union-attr]


def test_the_availability_test_probes_the_anonymous_health_route() -> None:
    import function_app

    assert "healthUrl: 'https://${app.outputs.defaultHostName}/api/health'" in MAIN_BICEP
    function_app.app.functions_bindings = {}
    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    binding = json.loads(functions["health"].get_function_json())["bindings"][0]
    assert (binding["route"], binding["authLevel"].upper()) == ("health", "ANONYMOUS")
    assert "ExpectedHttpStatusCode: 200" in ALERTS_BICEP
    assert "Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria" in ALERTS_BICEP


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("app/function.bicep", "site"),
        ("core/keyvault.bicep", "vault"),
        ("core/storage.bicep", "blobService"),
        ("core/storage.bicep", "queueService"),
        ("core/storage.bicep", "tableService"),
    ],
)
def test_diagnostic_settings_send_each_services_logs_to_log_analytics(path: str, scope: str) -> None:
    text = (INFRA / path).read_text()
    setting = re.search(
        rf"resource \w+ 'Microsoft.Insights/diagnosticSettings@[^']+' = \{{\n"
        rf"  name: '[^']+'\n  scope: {scope}\n(.*?)\n\}}",
        text,
        re.S,
    )
    assert setting is not None, scope
    assert "workspaceId: logAnalyticsId" in setting.group(0)
    assert "logs: [" in setting.group(0) or "serviceLogs" in setting.group(0)


def test_every_skipped_check_names_a_check_and_says_why() -> None:
    skips = [
        m for path in INFRA.rglob("*.bicep") for m in re.findall(r"checkov:skip=([^\n]*)", path.read_text())
    ]
    assert skips
    for skip in skips:
        check, _, reason = skip.partition(":")
        assert re.fullmatch(r"CKV_AZURE_\d+", check), skip
        assert len(reason.strip()) >= 30, f"{check} needs a reason"


@pytest.mark.parametrize("hook", ["postdeploy", "predown"])
def test_each_hook_runs_on_posix_and_windows_and_stops_azd_when_it_fails(hook: str) -> None:
    block = AZURE_YAML.split(f"  {hook}:\n", 1)[1].split("\n  # ", 1)[0]
    assert (
        f"    posix:\n      shell: sh\n      run: ./scripts/{hook}.sh\n      continueOnError: false" in block
    )
    assert (
        f"    windows:\n      shell: pwsh\n      run: ./scripts/{hook}.ps1\n      continueOnError: false"
        in block
    )
    script = ROOT / "scripts" / f"{hook}.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["sh", "-n", str(script)], check=True)
    assert re.search(r'^requiredVersions:\n  # [^\n]*\n  azd: ">= 1\.\d+\.\d+"$', AZURE_YAML, re.M)


def _report(passed: int, failed: int, parsing_errors: int) -> dict[str, object]:
    return {
        "summary": {"passed": passed, "failed": failed, "skipped": 0, "parsing_errors": parsing_errors},
        "results": {"skipped_checks": [], "failed_checks": []},
    }


def test_a_bicep_file_checkov_cannot_parse_fails_the_check_run() -> None:
    assert verdict(_report(27, 0, 0))[1] is True
    assert verdict(_report(27, 0, 1))[1] is False
    assert verdict(_report(27, 1, 0))[1] is False
    assert verdict(_report(0, 0, 0))[1] is False
