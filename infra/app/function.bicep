// The Function App: Flex Consumption plan (Linux), Python 3.13, a user-assigned identity for
// storage, telemetry and Key Vault references, and acs-triage's app settings. On Python 3.13 the
// Python worker is the azure-functions-runtime version requirements.txt pins: the one
// tests/test_worker.py runs the app in.
param location string
param tags object
param name string
param storageAccountName string
param deploymentContainerUrl string
param applicationInsightsName string
@description('Log Analytics workspace that receives the function logs.')
param logAnalyticsId string
param outboxQueueName string
param acsName string
@description('The ACS resource\'s immutable id, or empty to accept callbacks without a token.')
param callbackAudience string
param teamsSecretUri string
param slackSecretUri string
param pagerDutySecretUri string = ''
param webhookSecretUri string = ''
param webhookKeySecretUri string = ''
@description('Key Vault URI of the key that signs "Silence…" links, or empty for no links.')
param silenceKeySecretUri string = ''
@description('Settings the operator owns (name → value), carried through azd\'s parameters (main.bicep leaves out the empty ones).')
param operatorSettings object = {}
param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${name}'
  location: location
  tags: tags
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption needs always-ready instances, a fixed cost at rest that an alerting side channel does not warrant
  properties: { reserved: true }
}

// The settings the app reads. tests/test_infra.py compares these names with
// local.settings.sample.json and the host's own settings: keep them in this one block.
// app settings: begin
var baseSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  ACS_TRIAGE_STORE: 'azure'
  ACS_TRIAGE_OUTBOX_QUEUE: outboxQueueName
  ACS_TRIAGE_TABLE_PREFIX: 'acstriage'
  ACS_TRIAGE_RESOURCE: acsName
}
var callbackSettings = empty(callbackAudience) ? {} : { ACS_TRIAGE_CALLBACK_AUDIENCE: callbackAudience }
var teamsSettings = empty(teamsSecretUri) ? {} : { ACS_TRIAGE_TEAMS_URL: '@Microsoft.KeyVault(SecretUri=${teamsSecretUri})' }
var slackSettings = empty(slackSecretUri) ? {} : { ACS_TRIAGE_SLACK_URL: '@Microsoft.KeyVault(SecretUri=${slackSecretUri})' }
var pagerDutySettings = empty(pagerDutySecretUri) ? {} : { ACS_TRIAGE_PAGERDUTY_ROUTING_KEY: '@Microsoft.KeyVault(SecretUri=${pagerDutySecretUri})' }
var webhookSettings = empty(webhookSecretUri) ? {} : { ACS_TRIAGE_WEBHOOK_URL: '@Microsoft.KeyVault(SecretUri=${webhookSecretUri})' }
var webhookKeySettings = empty(webhookKeySecretUri) ? {} : { ACS_TRIAGE_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${webhookKeySecretUri})' }
// "Silence…" links need both settings (one alone is a configuration error), so both come with the
// key. The address is the host name the platform gives the app, never one made from the app's
// name (Azure may give new apps a host name with a random suffix and a region).
var silenceSettings = empty(silenceKeySecretUri) ? {} : {
  ACS_TRIAGE_SILENCE_LINK_KEY: '@Microsoft.KeyVault(SecretUri=${silenceKeySecretUri})'
  ACS_TRIAGE_PUBLIC_URL: 'https://${site.properties.defaultHostName}'
}
// app settings: end

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'triage' })
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_222: Event Grid and Call Automation deliver over the public internet; routes need a function key (and callbacks ACS's signed JWT)
  // checkov:skip=CKV_AZURE_17: Event Grid and Call Automation cannot present client certificates
  // checkov:skip=CKV_AZURE_212: the plan scales to zero on purpose (no cost at rest); Event Grid retries for 24 h and the outbox is durable
  // checkov:skip=CKV_AZURE_213: the platform health check (healthCheckPath) belongs to dedicated and Premium plans, not Flex Consumption; probe GET /api/health from outside instead (an availability test)
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references resolve with the user-assigned identity, not a system one.
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: { name: 'python', version: '3.13' }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads this app settings resource as a web app configuration. (The Bicep parser checkov
  // uses accepts at most four comment lines in a row, hence the spacing.)
  parent: site
  // checkov:skip=CKV_AZURE_222: see the site: public delivery from Event Grid and Call Automation
  // checkov:skip=CKV_AZURE_13: Event Grid webhooks and Call Automation callbacks cannot obtain Entra tokens for App Service Authentication; function keys and the callback JWT check guard the routes
  // checkov:skip=CKV_AZURE_63: App Service HTTP logs do not exist for Flex Consumption; requests are logged to Application Insights
  name: 'appsettings'
  // checkov:skip=CKV_AZURE_65: detailed error pages are an App Service feature; functions log to Application Insights
  // checkov:skip=CKV_AZURE_66: failed request tracing is an App Service feature; functions log to Application Insights
  // checkov:skip=CKV_AZURE_80: a Python app: no .NET Framework version to set
  // checkov:skip=CKV_AZURE_88: the app keeps no files; Flex Consumption deploys from a blob container
  properties: union(baseSettings, callbackSettings, teamsSettings, slackSettings, pagerDutySettings, webhookSettings, webhookKeySettings, silenceSettings, operatorSettings)
}

// The function logs (each invocation's log lines and errors) in the workspace as well.
resource siteDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
  properties: {
    workspaceId: logAnalyticsId
    logs: [{ category: 'FunctionAppLogs', enabled: true }]
    metrics: [{ category: 'AllMetrics', enabled: true }]
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
output identityPrincipalId string = identity.properties.principalId
