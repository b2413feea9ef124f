// The app's storage account: host state, the deployment package, acs-triage's dedup/group
// tables and outbox queue, and Event Grid's dead letters. Shared-key access is off; the app
// reaches it with its managed identity, Event Grid with the system topic's.
param location string
param tags object
param name string
param deploymentContainerName string
param deadLetterContainerName string
param queueNames array
@description('Log Analytics workspace that receives the storage services\' logs and metrics.')
param logAnalyticsId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  // checkov:skip=CKV_AZURE_35: the Flex Consumption app has no virtual network here, so a deny-by-default firewall would lock the app out of its own storage
  // checkov:skip=CKV_AZURE_59: public network access is how the app (no virtual network) reaches the account; shared keys are off and every access is by Entra identity
  // checkov:skip=CKV_AZURE_206: the data is short-lived (dedup ids for 48 h, burst counters, an outbox drained in seconds); geo-replication would cost more than it protects
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // The Flex Consumption app has no fixed outbound address without a virtual network.
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

// Events Event Grid gave up on (after its retries, or refused by the endpoint), one blob each:
// kept 30 days, where a lost alert can still be found and replayed (python -m triage replay).
resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: { publicAccess: 'None' }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Reads, writes and deletes of each service, with their metrics: who touched the outbox, the
// dead letters and the state tables, and when storage refused the app.
var serviceLogs = {
  logs: [
    { category: 'StorageRead', enabled: true }
    { category: 'StorageWrite', enabled: true }
    { category: 'StorageDelete', enabled: true }
  ]
  metrics: [{ category: 'Transaction', enabled: true }]
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: union(serviceLogs, { workspaceId: logAnalyticsId })
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
  properties: union(serviceLogs, { workspaceId: logAnalyticsId })
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
  properties: union(serviceLogs, { workspaceId: logAnalyticsId })
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in queueNames: {
  parent: queueService
  name: queue
}]

output name string = account.name
output id string = account.id
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer.name}'
