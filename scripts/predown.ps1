# azd predown hook on Windows: what scripts/predown.sh does (read its header), in PowerShell.
# Removes the app's Event Grid subscription (and the system topic postdeploy made, when no other
# subscription uses it), and bumps ACS_TRIAGE_VAULT_GENERATION for the next vault's name.
$Hook = 'predown'
. (Join-Path $PSScriptRoot 'hooklib.ps1')

Assert-Tools
$envValues = Get-AzdEnvironment
$generation = if ($envValues['ACS_TRIAGE_VAULT_GENERATION']) { $envValues['ACS_TRIAGE_VAULT_GENERATION'] } else { '1' }
if ($generation -notmatch '^[0-9]+$') { Fail "ACS_TRIAGE_VAULT_GENERATION must be a number, not '$generation'" }

$topic = $envValues['ACS_TRIAGE_TOPIC_NAME']
if ($topic) {
    Get-Needed $envValues @('AZURE_FUNCTION_APP_NAME', 'ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID', 'ACS_TRIAGE_TOPIC_GROUP')
    Assert-Login $envValues
    $subscription = Get-SubscriptionName $envValues
    $where = @('--subscription', $envValues['ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID'], '--resource-group', $envValues['ACS_TRIAGE_TOPIC_GROUP'])
    az eventgrid system-topic event-subscription show @where --system-topic-name $topic --name $subscription --output none 2>$null
    if ($LASTEXITCODE -eq 0) {
        az eventgrid system-topic event-subscription delete @where --system-topic-name $topic --name $subscription --yes --output none
        if ($LASTEXITCODE -ne 0) { Fail "could not remove the Event Grid subscription $subscription" }
        Write-Output "predown: removed the Event Grid subscription $subscription"
    }
    if ($envValues['ACS_TRIAGE_TOPIC_MADE'] -eq 'true') {
        $others = az eventgrid system-topic event-subscription list @where --system-topic-name $topic --query "length(@)" --output tsv
        if ("$others" -eq '0') {
            az eventgrid system-topic delete @where --name $topic --yes --output none
            if ($LASTEXITCODE -ne 0) { Fail "could not remove the system topic $topic" }
            Write-Output "predown: removed the system topic $topic (postdeploy made it)"
        } else {
            Write-Output "predown: kept the system topic ${topic}: $others other subscription(s) use it"
        }
    }
    azd env set ACS_TRIAGE_TOPIC_NAME ''
    azd env set ACS_TRIAGE_TOPIC_MADE false
} else {
    Write-Output 'predown: no Event Grid subscription was made in this environment; nothing to remove outside it'
}
azd env set ACS_TRIAGE_VAULT_GENERATION ([string]([int]$generation + 1))
