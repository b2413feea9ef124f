// acs-triage in one resource group: a Flex Consumption Function App (Linux, Python 3.13) with a
// user-assigned identity, its storage account (no shared keys; it also keeps Event Grid's
// dead letters), Application Insights + Log Analytics with diagnostic settings, alerts on poisoned
// alerts and on /api/health, and a Key Vault holding the webhook URLs and keys.
// Nothing is deployed outside this resource group: the ACS resource's Event Grid system topic and
// the subscription live in the ACS resource's group, so the hooks make and remove them
// (scripts/postdeploy.*, scripts/predown.*), and `azd down` deletes this group alone.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the resource names.')
param environmentName string

@minLength(1)
@description('Region of every new resource. It must offer the Flex Consumption plan.')
param location string

@description('Resource id of your existing Azure Communication Services resource (/subscriptions/…/providers/Microsoft.Communication/communicationServices/<name>).')
param acsResourceId string

@secure()
@description('Teams Workflows webhook URL. Stored in Key Vault; empty for no Teams alerts.')
param teamsWebhookUrl string = ''

@secure()
@description('Slack incoming webhook URL. Stored in Key Vault; empty for no Slack alerts.')
param slackWebhookUrl string = ''

@secure()
@description('PagerDuty Events API v2 routing key. Stored in Key Vault; empty for no PagerDuty.')
param pagerDutyRoutingKey string = ''

@secure()
@description('Generic webhook URL (acs-triage.alert/v1 documents). Stored in Key Vault; empty for none.')
param genericWebhookUrl string = ''

@secure()
@description('Standard Webhooks key that signs generic webhook posts: whsec_ + 24 to 64 random bytes in base64 (docs/webhook.md); several separated by spaces while rotating. Stored in Key Vault; empty: unsigned.')
param genericWebhookSecret string = ''

@secure()
@description('Key that signs the "Silence…" links in Teams and Slack alerts: at least 32 random characters (openssl rand -base64 48). Stored in Key Vault; set, it also sets ACS_TRIAGE_PUBLIC_URL to the app\'s address. Empty: no links.')
param silenceLinkKey string = ''

@description('Require Call Automation\'s signed JWT on /api/callbacks (audience: the ACS resource\'s immutable id).')
param requireCallbackToken bool = true

@description('Bumped by scripts/predown.* at each `azd down`: a deleted vault keeps its name for 90 days (purge protection), so the next `azd up` makes a vault of another name.')
param vaultGeneration string = '1'

// Settings the operator owns. Each `azd provision` replaces every app setting, so a value set in
// the portal would be erased: set them in the azd environment instead (`azd env set NAME VALUE`),
// and they are carried through here on every provision. Empty: the app's default.
@description('ACS_TRIAGE_ROUTES: routing rules (JSON list); empty: every alert to every destination.')
param routes string = ''

@description('ACS_TRIAGE_GROUP_WINDOW_SECONDS: how long repeats of one failure are grouped; empty: 300.')
param groupWindowSeconds string = ''

@description('ACS_TRIAGE_SEND_RESOLVED: post a notice when a burst goes quiet; empty: true.')
param sendResolved string = ''

@description('ACS_TRIAGE_MASK_PII: mask phone numbers and user ids in alerts; empty: true.')
param maskPii string = ''

@description('ACS_TRIAGE_REPORT_SCHEDULE: cron (UTC) of the daily report; empty: no report.')
param reportSchedule string = ''

@description('ACS_TRIAGE_REPORT_TO: destinations of the daily report; empty: every chat destination.')
param reportTo string = ''

@description('E-mail address that receives the alerts on poisoned alerts and on /api/health; empty: the alerts show in the portal only.')
param alertEmail string = ''

@description('Resource group name; empty for rg-<environmentName>.')
param resourceGroupName string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var vaultToken = toLower(uniqueString(subscription().id, environmentName, location, vaultGeneration))
var tags = { 'azd-env-name': environmentName }
var appName = 'func-acstriage-${resourceToken}'
// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Communication/communicationServices/<name>
var acsParts = split(acsResourceId, '/')
var acsSubscriptionId = acsParts[2]
var acsResourceGroup = acsParts[4]
var acsName = last(acsParts)
var deadLetterContainerName = 'eventgrid-deadletter'
// The operator's settings that are set; an unset one keeps the app's default.
// operator settings: begin
var operatorSettings = union(
  empty(routes) ? {} : { ACS_TRIAGE_ROUTES: routes },
  empty(groupWindowSeconds) ? {} : { ACS_TRIAGE_GROUP_WINDOW_SECONDS: groupWindowSeconds },
  empty(sendResolved) ? {} : { ACS_TRIAGE_SEND_RESOLVED: sendResolved },
  empty(maskPii) ? {} : { ACS_TRIAGE_MASK_PII: maskPii },
  empty(reportSchedule) ? {} : { ACS_TRIAGE_REPORT_SCHEDULE: reportSchedule },
  empty(reportTo) ? {} : { ACS_TRIAGE_REPORT_TO: reportTo }
)
// operator settings: end

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

resource acs 'Microsoft.Communication/communicationServices@2023-04-01' existing = {
  name: acsName
  scope: resourceGroup(acsSubscriptionId, acsResourceGroup)
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'stacstriage${take(resourceToken, 11)}'
    deploymentContainerName: 'app-package-${resourceToken}'
    // Where Event Grid writes what it could not deliver (the topic's identity writes there).
    deadLetterContainerName: deadLetterContainerName
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    // The outbox between the HTTP function and the delivering queue trigger, and its poison queue.
    queueNames: ['${appName}-outbox', '${appName}-outbox-poison']
  }
}

module vault 'core/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'kv-acstriage-${take(vaultToken, 11)}'
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    secrets: {
      'teams-webhook-url': teamsWebhookUrl
      'slack-webhook-url': slackWebhookUrl
      'pagerduty-routing-key': pagerDutyRoutingKey
      'generic-webhook-url': genericWebhookUrl
      'generic-webhook-secret': genericWebhookSecret
      'silence-link-key': silenceLinkKey
    }
  }
}

module app 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    location: location
    tags: tags
    name: appName
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    outboxQueueName: '${appName}-outbox'
    acsName: acsName
    callbackAudience: requireCallbackToken ? acs.properties.immutableResourceId : ''
    teamsSecretUri: empty(teamsWebhookUrl) ? '' : '${vault.outputs.secretsUri}teams-webhook-url'
    slackSecretUri: empty(slackWebhookUrl) ? '' : '${vault.outputs.secretsUri}slack-webhook-url'
    pagerDutySecretUri: empty(pagerDutyRoutingKey) ? '' : '${vault.outputs.secretsUri}pagerduty-routing-key'
    webhookSecretUri: empty(genericWebhookUrl) ? '' : '${vault.outputs.secretsUri}generic-webhook-url'
    webhookKeySecretUri: empty(genericWebhookSecret) ? '' : '${vault.outputs.secretsUri}generic-webhook-secret'
    silenceKeySecretUri: empty(silenceLinkKey) ? '' : '${vault.outputs.secretsUri}silence-link-key'
    operatorSettings: operatorSettings
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: app.outputs.identityPrincipalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: vault.outputs.name
  }
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    name: appName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    healthUrl: 'https://${app.outputs.defaultHostName}/api/health'
    alertEmail: alertEmail
  }
}

// Read by azd (and by the hooks through `azd env get-values`).
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = app.outputs.defaultHostName
output ACS_SYSTEM_TOPIC_RESOURCE_GROUP string = acsResourceGroup
output ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID string = acsSubscriptionId
output ACS_TRIAGE_DEADLETTER_CONTAINER_ID string = '${storage.outputs.id}/blobServices/default/containers/${deadLetterContainerName}'
