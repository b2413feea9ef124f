// Key Vault holding the app's secrets: the webhook URLs (they are the credentials of the webhooks)
// and the keys (PagerDuty's routing key, the generic webhook's signing key, the key of the
// "Silence…" links). Access is by Azure RBAC only; the app reads them through Key Vault references
// with its managed identity.
param location string
param tags object
param name string
@description('Log Analytics workspace that receives the vault\'s audit log.')
param logAnalyticsId string

@secure()
@description('Secret name → value; a secret with an empty value is not created. A name ending in -url holds a URL.')
param secrets object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_109: Key Vault references are resolved from outside any virtual network unless the app joins one; a deny-by-default firewall breaks them
  // checkov:skip=CKV_AZURE_189: the same: public network access is how the Flex Consumption app (no virtual network) reaches the vault; RBAC still guards every read
  properties: {
    tenantId: tenant().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // App Service resolves Key Vault references from outside any virtual network unless the
      // app is integrated into one; a deny-by-default firewall would make every reference fail.
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for item in items(secrets): if (!empty(item.value)) {
  parent: vault
  name: item.key
  // checkov:skip=CKV_AZURE_41: a webhook URL or key is valid until revoked or rotated; an expiry would stop alerts (or links) silently
  properties: {
    value: item.value
    contentType: endsWith(item.key, '-url') ? 'text/uri-list' : 'text/plain'
    // No expiry: a webhook URL or key is valid until it is revoked or rotated, and an expired
    // secret would stop every alert (or every "Silence…" link) without a word.
  }
}]

// Every read of a webhook secret (and every refusal: an unresolved Key Vault reference shows here).
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsId
    logs: [{ categoryGroup: 'audit', enabled: true }]
    metrics: [{ category: 'AllMetrics', enabled: true }]
  }
}

output name string = vault.name
// Base of the version-less secret URIs (…/secrets/<name>): the app follows the current version
// when a URL is rotated.
output secretsUri string = '${vault.properties.vaultUri}secrets/'
