# azd postdeploy hook on Windows: what scripts/postdeploy.sh does (read its header), in PowerShell.
# Subscribes /api/eventgrid to the ACS resource's events through its Event Grid system topic
# (made here when the resource has none), with dead letters written by the topic's identity.
$Hook = 'postdeploy'
. (Join-Path $PSScriptRoot 'hooklib.ps1')

Assert-Tools
$envValues = Get-AzdEnvironment
Get-Needed $envValues @('AZURE_FUNCTION_APP_NAME', 'AZURE_FUNCTION_APP_HOSTNAME', 'AZURE_RESOURCE_GROUP', 'ACS_RESOURCE_ID',
    'ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID', 'ACS_SYSTEM_TOPIC_RESOURCE_GROUP', 'ACS_TRIAGE_DEADLETTER_CONTAINER_ID')
Assert-Login $envValues
$types = Get-EventTypes $envValues
$schema = switch ($(if ($envValues['ACS_TRIAGE_EVENT_SCHEMA']) { $envValues['ACS_TRIAGE_EVENT_SCHEMA'] } else { 'EventGridSchema' })) {
    'EventGridSchema' { 'eventgridschema' }
    'CloudEventSchemaV1_0' { 'cloudeventschemav1_0' }
    default { Fail 'ACS_TRIAGE_EVENT_SCHEMA must be EventGridSchema or CloudEventSchemaV1_0' }
}
$subscriptionId = $envValues['AZURE_SUBSCRIPTION_ID']
$acsSub = $envValues['ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID']
$appName = $envValues['AZURE_FUNCTION_APP_NAME']
$deadLetter = $envValues['ACS_TRIAGE_DEADLETTER_CONTAINER_ID']

# The resource's system topic, wherever in its subscription it is (ids compare without case).
$found = $null
foreach ($row in @(az eventgrid system-topic list --subscription $acsSub --query "[].[name, resourceGroup, source]" --output tsv)) {
    $name, $group, $source = $row -split "`t"
    if ($source -and $source.ToLowerInvariant() -eq $envValues['ACS_RESOURCE_ID'].ToLowerInvariant()) { $found = @($name, $group); break }
}
if ($found) {
    $topic, $topicGroup = $found
    $made = if ($envValues['ACS_TRIAGE_TOPIC_MADE'] -and $topic -eq $envValues['ACS_TRIAGE_TOPIC_NAME']) { $envValues['ACS_TRIAGE_TOPIC_MADE'] } else { 'false' }
} else {
    $topic = 'evgt-acstriage-' + ($appName -split '-')[-1]
    $topicGroup = $envValues['ACS_SYSTEM_TOPIC_RESOURCE_GROUP']
    az eventgrid system-topic create --subscription $acsSub --resource-group $topicGroup --name $topic `
        --location global --topic-type Microsoft.Communication.CommunicationServices --source $envValues['ACS_RESOURCE_ID'] `
        --mi-system-assigned --output none
    if ($LASTEXITCODE -ne 0) { Fail "could not make the system topic $topic" }
    $made = 'true'
    Write-Output "postdeploy: made the Event Grid system topic $topic of the ACS resource"
}
azd env set ACS_TRIAGE_TOPIC_NAME $topic
azd env set ACS_TRIAGE_TOPIC_GROUP $topicGroup
azd env set ACS_TRIAGE_TOPIC_MADE $made

# Dead letters are written with the topic's own identity: it needs one, and the right to write blobs.
$principal = az eventgrid system-topic show --subscription $acsSub --resource-group $topicGroup --name $topic --query identity.principalId --output tsv
if (-not $principal) {
    az eventgrid system-topic update --subscription $acsSub --resource-group $topicGroup --name $topic --mi-system-assigned --output none
    $principal = az eventgrid system-topic show --subscription $acsSub --resource-group $topicGroup --name $topic --query identity.principalId --output tsv
}
if (-not $principal) { Fail "the system topic $topic has no managed identity to write dead letters with" }
az role assignment create --subscription $subscriptionId --assignee-object-id $principal `
    --assignee-principal-type ServicePrincipal --role 'Storage Blob Data Contributor' --scope $deadLetter --output none
if ($LASTEXITCODE -ne 0) { Fail 'could not let the topic write dead letters (Storage Blob Data Contributor)' }

# The routes use authLevel FUNCTION: the app's default function key opens them. Never printed.
$key = az functionapp keys list --subscription $subscriptionId --name $appName `
    --resource-group $envValues['AZURE_RESOURCE_GROUP'] --query functionKeys.default --output tsv
if (-not $key) { Fail "no default function key on $appName yet; run 'azd deploy' again in a minute" }
$endpoint = "https://$($envValues['AZURE_FUNCTION_APP_HOSTNAME'])/api/eventgrid?code=$key"

$subscription = Get-SubscriptionName $envValues
$where = @('--subscription', $acsSub, '--resource-group', $topicGroup, '--system-topic-name', $topic, '--name', $subscription)
az eventgrid system-topic event-subscription show @where --output none 2>$null
if ($LASTEXITCODE -eq 0) {
    az eventgrid system-topic event-subscription update @where --endpoint $endpoint `
        --included-event-types @types `
        --deadletter-identity systemassigned --deadletter-identity-endpoint $deadLetter --output none
    if ($LASTEXITCODE -ne 0) { Fail "could not update $subscription" }
    Write-Output "postdeploy: updated $subscription on ${topic}: $($types -join ' ')"
} else {
    # Event Grid retries for 24 hours (1440 minutes), then dead-letters; acs-triage drops duplicates.
    az eventgrid system-topic event-subscription create @where --endpoint $endpoint --endpoint-type webhook `
        --event-delivery-schema $schema --included-event-types @types `
        --max-delivery-attempts 30 --event-ttl 1440 `
        --deadletter-identity systemassigned --deadletter-identity-endpoint $deadLetter --output none
    if ($LASTEXITCODE -ne 0) { Fail "could not make $subscription" }
    Write-Output "postdeploy: subscribed $appName /api/eventgrid to $($types -join ' ') ($schema) as $subscription"
}
