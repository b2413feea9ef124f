# Shared by the azd hooks on Windows (scripts/postdeploy.ps1, scripts/predown.ps1); dot-sourced.
# The PowerShell twins of scripts/hooklib.sh and the .sh hooks: the same az commands with the same
# options (tests/test_hooks.py holds them to each other). No secret is ever printed.
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# The event types acs-triage reads; ACS_TRIAGE_EVENT_TYPES (comma-separated) picks among them.
$AllowedEventTypes = @(
    'Microsoft.Communication.SMSDeliveryReportReceived',
    'Microsoft.Communication.CallEnded',
    'Microsoft.Communication.EmailDeliveryReportReceived',
    'Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated',
    'Microsoft.Communication.RouterJobClassificationFailed',
    'Microsoft.Communication.RouterJobSchedulingFailed'
)
$DefaultEventTypes = 'Microsoft.Communication.SMSDeliveryReportReceived'

function Fail([string]$Message) {
    [Console]::Error.WriteLine("${Hook}: $Message")
    exit 1
}

function Assert-Tools {
    if (-not (Get-Command azd -ErrorAction SilentlyContinue)) { Fail 'azd is not on PATH (this script runs as an azd hook)' }
    if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
        Fail 'the Azure CLI (az) is not installed: the hooks manage the Event Grid subscription with it (https://aka.ms/installazurecli)'
    }
}

# The azd environment (KEY="value" lines, quoted by azd) as a hashtable.
function Get-AzdEnvironment {
    $lines = azd env get-values
    if ($LASTEXITCODE -ne 0) { Fail "'azd env get-values' failed: select an environment with 'azd env select'" }
    $values = @{}
    foreach ($line in $lines) {
        if ($line -match '^([A-Za-z_][A-Za-z0-9_]*)="(.*)"$') {
            $values[$Matches[1]] = $Matches[2] -replace '\\(.)', '$1'
        }
    }
    return $values
}

function Get-Needed([hashtable]$Values, [string[]]$Names) {
    foreach ($name in $Names) {
        if (-not $Values[$name]) { Fail "$name is not in the azd environment; run 'azd provision' first" }
    }
}

# az must be logged in where azd deploys: `azd auth login` does not log az in, and az's own
# default subscription may be another one.
function Assert-Login([hashtable]$Values) {
    Get-Needed $Values @('AZURE_SUBSCRIPTION_ID')
    $subscription = $Values['AZURE_SUBSCRIPTION_ID']
    az account show --subscription $subscription --output none 2>$null
    if ($LASTEXITCODE -ne 0) {
        Fail "az is not logged in to subscription $subscription (azd's): run 'az login' ('azd auth login' does not log az in)"
    }
}

# The subscription's event types; each must be one acs-triage reads.
function Get-EventTypes([hashtable]$Values) {
    $chosen = if ($Values['ACS_TRIAGE_EVENT_TYPES']) { $Values['ACS_TRIAGE_EVENT_TYPES'] } else { $DefaultEventTypes }
    $types = @($chosen -split '[,\s]+' | Where-Object { $_ })
    if ($types.Count -eq 0) { Fail "ACS_TRIAGE_EVENT_TYPES is empty; unset it for $DefaultEventTypes" }
    foreach ($type in $types) {
        if ($AllowedEventTypes -notcontains $type) {
            Fail "ACS_TRIAGE_EVENT_TYPES: $type is not an event type acs-triage reads; choose among: $($AllowedEventTypes -join ' ')"
        }
    }
    return $types
}

# This app's subscription; the app name's token keeps two environments on one ACS resource apart.
function Get-SubscriptionName([hashtable]$Values) {
    return 'acs-triage-' + ($Values['AZURE_FUNCTION_APP_NAME'] -split '-')[-1]
}
