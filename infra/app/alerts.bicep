// What tells the operator that acs-triage itself is in trouble: alerts moved to the poison queue
// (a destination refused them or stayed down through every retry), and /api/health failing
// (settings that cannot work, storage refusing the app, or the app not answering at all).
param location string
param tags object
param name string
param applicationInsightsName string
@description('The app\'s health route, probed from outside (Flex Consumption has no platform health check).')
param healthUrl string
@description('E-mail address for the alerts; empty: they show in the portal only.')
param alertEmail string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource operator 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${name}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'acstriage'
    enabled: true
    emailReceivers: [{ name: 'operator', emailAddress: alertEmail, useCommonAlertSchema: true }]
  }
}

var actions = empty(alertEmail) ? [] : [operator.id]

// Each poisoned delivery adds one message to the poison queue (acs_triage.deliveries, outcome
// "poisoned", from triage/telemetry.py). They stay there until a later success re-drives them or
// `python -m triage outbox redrive` does: worth a look within the quarter hour.
resource poisoned 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-${name}-poisoned'
  location: location
  tags: tags
  properties: {
    displayName: 'acs-triage: alerts moved to the poison queue'
    description: 'Alerts a destination refused or that failed through every retry are in the outbox\'s poison queue. GET /api/health shows its depth; `python -m triage outbox status` lists them.'
    severity: 2
    enabled: true
    scopes: [appInsights.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "acs_triage.deliveries" and tostring(customDimensions.outcome) == "poisoned" | summarize poisoned = sum(valueSum)'
          timeAggregation: 'Total'
          metricMeasureColumn: 'poisoned'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: true
    actions: { actionGroups: actions }
  }
}

// GET /api/health from three regions every five minutes: 503 names the problem (settings,
// storage), and no answer at all means nothing is taking Event Grid's deliveries.
resource health 'Microsoft.Insights/webtests@2022-06-15' = {
  name: 'webtest-${name}-health'
  location: location
  // The portal shows a web test under the Application Insights resource this tag names.
  tags: union(tags, { 'hidden-link:${appInsights.id}': 'Resource' })
  kind: 'standard'
  properties: {
    SyntheticMonitorId: 'webtest-${name}-health'
    Name: 'acs-triage /api/health'
    Enabled: true
    Frequency: 300
    Timeout: 30
    Kind: 'standard'
    RetryEnabled: true
    Locations: [{ Id: 'emea-nl-ams-azr' }, { Id: 'us-va-ash-azr' }, { Id: 'apac-sg-sin-azr' }]
    Request: { RequestUrl: healthUrl, HttpVerb: 'GET', ParseDependentRequests: false }
    ValidationRules: { ExpectedHttpStatusCode: 200, SSLCheck: true, SSLCertRemainingLifetimeCheck: 7 }
  }
}

resource unhealthy 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-${name}-health'
  location: 'global'
  tags: tags
  properties: {
    description: 'GET /api/health failed from two regions or more: its answer names the setting or storage problem.'
    severity: 1
    enabled: true
    scopes: [health.id, appInsights.id]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria'
      webTestId: health.id
      componentId: appInsights.id
      failedLocationCount: 2
    }
    autoMitigate: true
    actions: [for group in actions: { actionGroupId: group }]
  }
}
