// acs-triage in one resource group: a Flex Consumption Function App (Linux, Python 3.11) with a
// user-assigned identity, its storage account (no shared keys), Application Insights + Log
// Analytics, a Key Vault holding the webhook URLs, and the Event Grid system topic of an existing
// ACS resource. The event subscription itself is made by scripts/postdeploy.sh once the code runs.
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
@description('Key that signs generic webhook posts (HMAC-SHA256, 16+ characters). Stored in Key Vault.')
param genericWebhookSecret string = ''

@allowed(['EventGridSchema', 'CloudEventSchemaV1_0'])
@description('Schema Event Grid delivers SMS delivery reports in (acs-triage reads both).')
param eventSchema string = 'EventGridSchema'

@description('Name of the ACS resource\'s existing Event Grid system topic, if it has one (a resource can have only one). Empty: create it.')
param existingSystemTopicName string = ''

@description('Require Call Automation\'s signed JWT on /api/callbacks (audience: the ACS resource\'s immutable id).')
param requireCallbackToken bool = true

@description('Resource group name; empty for rg-<environmentName>.')
param resourceGroupName string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var appName = 'func-acstriage-${resourceToken}'
// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Communication/communicationServices/<name>
var acsParts = split(acsResourceId, '/')
var acsSubscriptionId = acsParts[2]
var acsResourceGroup = acsParts[4]
var acsName = last(acsParts)

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
    name: 'kv-acstriage-${take(resourceToken, 9)}'
    secrets: {
      'teams-webhook-url': teamsWebhookUrl
      'slack-webhook-url': slackWebhookUrl
      'pagerduty-routing-key': pagerDutyRoutingKey
      'generic-webhook-url': genericWebhookUrl
      'generic-webhook-secret': genericWebhookSecret
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
    outboxQueueName: '${appName}-outbox'
    acsName: acsName
    callbackAudience: requireCallbackToken ? acs.properties.immutableResourceId : ''
    teamsSecretUri: empty(teamsWebhookUrl) ? '' : '${vault.outputs.secretsUri}teams-webhook-url'
    slackSecretUri: empty(slackWebhookUrl) ? '' : '${vault.outputs.secretsUri}slack-webhook-url'
    pagerDutySecretUri: empty(pagerDutyRoutingKey) ? '' : '${vault.outputs.secretsUri}pagerduty-routing-key'
    webhookSecretUri: empty(genericWebhookUrl) ? '' : '${vault.outputs.secretsUri}generic-webhook-url'
    webhookKeySecretUri: empty(genericWebhookSecret) ? '' : '${vault.outputs.secretsUri}generic-webhook-secret'
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

module systemTopic 'app/eventgrid.bicep' = {
  name: 'acs-system-topic'
  scope: resourceGroup(acsSubscriptionId, acsResourceGroup)
  params: {
    acsResourceId: acsResourceId
    existingSystemTopicName: existingSystemTopicName
    name: 'evgt-acstriage-${resourceToken}'
    tags: tags
  }
}

// Read by azd (and scripts/postdeploy.sh through `azd env get-values`).
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = app.outputs.defaultHostName
output ACS_SYSTEM_TOPIC_NAME string = systemTopic.outputs.name
output ACS_SYSTEM_TOPIC_RESOURCE_GROUP string = acsResourceGroup
output ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID string = acsSubscriptionId
output ACS_TRIAGE_EVENT_SCHEMA string = eventSchema
