"""The deploy kit (azure.yaml, infra/, scripts/postdeploy.sh) read as text: the Bicep compiler cannot
run here (checkov checks the templates in .ci/run). These tests hold the templates to the app: every
app setting they set is one the app reads, every setting the app needs is set, secrets stay secret."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tools.checkov_report import verdict

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
FUNCTION_BICEP = (INFRA / "app" / "function.bicep").read_text(encoding="utf-8")
MAIN_BICEP = (INFRA / "main.bicep").read_text(encoding="utf-8")

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
}


def app_settings_read() -> set[str]:
    """The app's settings, from their one documented list, plus the host's own."""
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    return set(sample["Values"]) | HOST_SETTINGS


def template_settings() -> dict[str, str]:
    """Setting name → the Bicep expression of its value, from function.bicep's settings block."""
    block = FUNCTION_BICEP.split("// app settings: begin", 1)[1].split("// app settings: end", 1)[0]
    return dict(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*): ('[^\n]*'|[a-zA-Z][^\n}]*)", block))


def test_the_settings_block_is_found_and_applied() -> None:
    settings = template_settings()
    assert len(settings) >= 10
    assert (
        "union(baseSettings, callbackSettings, teamsSettings, slackSettings, pagerDutySettings, "
        "webhookSettings, webhookKeySettings)" in FUNCTION_BICEP
    )


def test_every_setting_the_templates_set_is_one_the_app_or_host_reads() -> None:
    assert set(template_settings()) - app_settings_read() == set()


def test_every_setting_the_app_needs_is_set() -> None:
    assert set(REQUIRED) - set(template_settings()) == set()
    assert set(REQUIRED) <= app_settings_read() | HOST_SETTINGS


def test_settings_the_app_reads_are_either_set_defaulted_or_local_only() -> None:
    """A setting missing from the templates must have a default in the app (the sample's value is
    what the app assumes) or be one Flex Consumption replaces."""
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    unset = set(sample) - set(template_settings()) - LOCAL_ONLY
    # Webhook URLs and the shared secret are optional by design, and the per-service storage URIs
    # are the alternative to the __accountName the templates set; everything else has a default.
    optional = {
        "ACS_TRIAGE_ROUTES",
        "ACS_TRIAGE_ROUTES_FILE",
        "ACS_TRIAGE_SHARED_SECRET",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        # a local stand-in for PagerDuty only; the daily report is off until a schedule is chosen
        "ACS_TRIAGE_PAGERDUTY_URL",
        "ACS_TRIAGE_REPORT_SCHEDULE",
        "ACS_TRIAGE_REPORT_TO",
        # routes' extras: unset, what no route takes goes everywhere and no route is muted;
        # the resolve period follows the group window (5 minutes with grouping off)
        "ACS_TRIAGE_DEFAULT_ROUTE",
        "ACS_TRIAGE_TIME_INTERVALS",
        "ACS_TRIAGE_RESOLVE_AFTER_SECONDS",
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


def test_storage_is_reached_by_identity_with_shared_keys_off() -> None:
    storage = (INFRA / "core" / "storage.bicep").read_text(encoding="utf-8")
    assert "allowSharedKeyAccess: false" in storage
    assert "AzureWebJobsStorage__credential: 'managedidentity'" in FUNCTION_BICEP
    assert not re.search(r"AccountKey|listKeys|connectionString", FUNCTION_BICEP + storage)
    rbac = (INFRA / "app" / "rbac.bicep").read_text(encoding="utf-8")
    for role in ("storageBlobDataOwner", "storageQueueDataContributor", "storageTableDataContributor"):
        assert role in rbac.split("resource storageRoles", 1)[1].split("\n", 1)[0]
    assert "keyVaultSecretsUser" in rbac


def test_the_function_app_is_flex_consumption_linux_python_3_11() -> None:
    assert "sku: { name: 'FC1', tier: 'FlexConsumption' }" in FUNCTION_BICEP
    assert "runtime: { name: 'python', version: '3.11' }" in FUNCTION_BICEP
    assert "kind: 'functionapp,linux'" in FUNCTION_BICEP


def test_every_skipped_check_names_a_check_and_says_why() -> None:
    skips = [
        m for path in INFRA.rglob("*.bicep") for m in re.findall(r"checkov:skip=([^\n]*)", path.read_text())
    ]
    assert skips
    for skip in skips:
        check, _, reason = skip.partition(":")
        assert re.fullmatch(r"CKV_AZURE_\d+", check), skip
        assert len(reason.strip()) >= 30, f"{check} needs a reason"


def test_the_postdeploy_hook_subscribes_sms_delivery_reports_to_the_eventgrid_route() -> None:
    azure_yaml = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert "run: ./scripts/postdeploy.sh" in azure_yaml
    hook = ROOT / "scripts" / "postdeploy.sh"
    text = hook.read_text(encoding="utf-8")
    assert "Microsoft.Communication.SMSDeliveryReportReceived" in text
    assert "/api/eventgrid?code=" in text
    assert "az functionapp keys list" in text
    assert hook.stat().st_mode & 0o111
    subprocess.run(["sh", "-n", str(hook)], check=True)


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
