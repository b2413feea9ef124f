#!/bin/sh
# azd postdeploy hook: subscribe the Function App's /api/eventgrid route to the SMS delivery reports
# of the ACS resource's Event Grid system topic (made by infra/). It runs after the code is
# deployed because Event Grid validates the endpoint when the subscription is created, and the
# function key exists only once the app runs. Safe to run again: an existing subscription is updated.
# The function key is a secret: it is passed to az, never printed.
set -eu

# The outputs of infra/main.bicep, as azd keeps them (KEY="value" lines).
eval "$(azd env get-values)"

for name in AZURE_FUNCTION_APP_NAME AZURE_FUNCTION_APP_HOSTNAME AZURE_RESOURCE_GROUP \
  ACS_SYSTEM_TOPIC_NAME ACS_SYSTEM_TOPIC_RESOURCE_GROUP ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "postdeploy: $name is not in the azd environment; run 'azd provision' first" >&2
    exit 1
  fi
done

case "${ACS_TRIAGE_EVENT_SCHEMA:-EventGridSchema}" in
  EventGridSchema) schema=eventgridschema ;;
  CloudEventSchemaV1_0) schema=cloudeventschemav1_0 ;;
  *) echo "postdeploy: ACS_TRIAGE_EVENT_SCHEMA must be EventGridSchema or CloudEventSchemaV1_0" >&2; exit 1 ;;
esac

# The routes use authLevel FUNCTION: the app's default function key opens them.
key=$(az functionapp keys list --name "$AZURE_FUNCTION_APP_NAME" --resource-group "$AZURE_RESOURCE_GROUP" \
  --query functionKeys.default --output tsv)
if [ -z "$key" ]; then
  echo "postdeploy: no default function key on $AZURE_FUNCTION_APP_NAME yet; run 'azd deploy' again in a minute" >&2
  exit 1
fi
endpoint="https://$AZURE_FUNCTION_APP_HOSTNAME/api/eventgrid?code=$key"

set -- --name acs-triage-sms-delivery \
  --subscription "$ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID" \
  --resource-group "$ACS_SYSTEM_TOPIC_RESOURCE_GROUP" \
  --system-topic-name "$ACS_SYSTEM_TOPIC_NAME"

if az eventgrid system-topic event-subscription show "$@" --output none 2>/dev/null; then
  az eventgrid system-topic event-subscription update "$@" --endpoint "$endpoint" \
    --included-event-types Microsoft.Communication.SMSDeliveryReportReceived --output none
  echo "postdeploy: updated the SMS delivery report subscription on $ACS_SYSTEM_TOPIC_NAME"
else
  # Event Grid retries for 24 hours (1440 minutes); acs-triage drops the duplicates.
  az eventgrid system-topic event-subscription create "$@" --endpoint "$endpoint" \
    --endpoint-type webhook \
    --event-delivery-schema "$schema" \
    --included-event-types Microsoft.Communication.SMSDeliveryReportReceived \
    --max-delivery-attempts 30 --event-ttl 1440 --output none
  echo "postdeploy: subscribed $AZURE_FUNCTION_APP_NAME /api/eventgrid to SMS delivery reports ($schema)"
fi
