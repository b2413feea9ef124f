#!/bin/sh
# azd postdeploy hook: subscribe the Function App's /api/eventgrid route to the ACS resource's
# events (ACS_TRIAGE_EVENT_TYPES; SMS delivery reports by default), through the resource's Event
# Grid system topic. The topic and the subscription live in the ACS resource's subscription and
# group, which azd must never delete, so this hook makes them rather than infra/: it uses the
# resource's topic when it has one (a resource has at most one) and makes it otherwise,
# remembering so in the azd environment for scripts/predown.sh. Events Event Grid gives up on are
# dead-lettered into the app's storage (ACS_TRIAGE_DEADLETTER_CONTAINER_ID) with the topic's
# managed identity. It runs after the code is deployed: Event Grid validates the endpoint when the
# subscription is made, and the function key exists only once the app runs. Safe to run again.
set -eu
hook=postdeploy
# shellcheck source=scripts/hooklib.sh
. "$(dirname "$0")/hooklib.sh"

need_tools
load_env
need AZURE_FUNCTION_APP_NAME AZURE_FUNCTION_APP_HOSTNAME AZURE_RESOURCE_GROUP ACS_RESOURCE_ID \
  ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID ACS_SYSTEM_TOPIC_RESOURCE_GROUP ACS_TRIAGE_DEADLETTER_CONTAINER_ID
need_login
types=$(event_types)
case "${ACS_TRIAGE_EVENT_SCHEMA:-EventGridSchema}" in
  EventGridSchema) schema=eventgridschema ;;
  CloudEventSchemaV1_0) schema=cloudeventschemav1_0 ;;
  *) fail "ACS_TRIAGE_EVENT_SCHEMA must be EventGridSchema or CloudEventSchemaV1_0" ;;
esac
acs_sub=$ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID

# The resource's system topic, wherever in its subscription it is (ids compare without case).
tab=$(printf '\t')
wanted=$(lower "$ACS_RESOURCE_ID")
found=$(az eventgrid system-topic list --subscription "$acs_sub" --query "[].[name, resourceGroup, source]" --output tsv \
  | while IFS="$tab" read -r name group source; do
    if [ "$(lower "$source")" = "$wanted" ]; then printf '%s %s\n' "$name" "$group"; fi
  done)
if [ -n "$found" ]; then
  topic=${found%% *}
  topic_group=${found#* }
  made=${ACS_TRIAGE_TOPIC_MADE:-false}
  [ "$topic" = "${ACS_TRIAGE_TOPIC_NAME:-}" ] || made=false # someone else's topic: never ours to delete
else
  topic="evgt-acstriage-${AZURE_FUNCTION_APP_NAME##*-}"
  topic_group=$ACS_SYSTEM_TOPIC_RESOURCE_GROUP
  az eventgrid system-topic create --subscription "$acs_sub" --resource-group "$topic_group" --name "$topic" \
    --location global --topic-type Microsoft.Communication.CommunicationServices --source "$ACS_RESOURCE_ID" \
    --mi-system-assigned --output none
  made=true
  echo "postdeploy: made the Event Grid system topic $topic of the ACS resource"
fi
azd env set ACS_TRIAGE_TOPIC_NAME "$topic"
azd env set ACS_TRIAGE_TOPIC_GROUP "$topic_group"
azd env set ACS_TRIAGE_TOPIC_MADE "$made"
topic_args="--subscription $acs_sub --resource-group $topic_group"

# Dead letters are written with the topic's own identity: it needs one, and the right to write blobs.
# shellcheck disable=SC2086 # topic_args are words without spaces (ids and names)
principal=$(az eventgrid system-topic show $topic_args --name "$topic" --query identity.principalId --output tsv)
if [ -z "$principal" ]; then
  # shellcheck disable=SC2086
  az eventgrid system-topic update $topic_args --name "$topic" --mi-system-assigned --output none
  # shellcheck disable=SC2086
  principal=$(az eventgrid system-topic show $topic_args --name "$topic" --query identity.principalId --output tsv)
fi
[ -n "$principal" ] || fail "the system topic $topic has no managed identity to write dead letters with"
az role assignment create --subscription "$AZURE_SUBSCRIPTION_ID" --assignee-object-id "$principal" \
  --assignee-principal-type ServicePrincipal --role "Storage Blob Data Contributor" \
  --scope "$ACS_TRIAGE_DEADLETTER_CONTAINER_ID" --output none

# The routes use authLevel FUNCTION: the app's default function key opens them. Never printed.
key=$(az functionapp keys list --subscription "$AZURE_SUBSCRIPTION_ID" --name "$AZURE_FUNCTION_APP_NAME" \
  --resource-group "$AZURE_RESOURCE_GROUP" --query functionKeys.default --output tsv)
[ -n "$key" ] || fail "no default function key on $AZURE_FUNCTION_APP_NAME yet; run 'azd deploy' again in a minute"
endpoint="https://$AZURE_FUNCTION_APP_HOSTNAME/api/eventgrid?code=$key"

subscription=$(subscription_name)
set -- --subscription "$acs_sub" --resource-group "$topic_group" --system-topic-name "$topic" --name "$subscription"
# shellcheck disable=SC2086 # the event types are words
if az eventgrid system-topic event-subscription show "$@" --output none 2>/dev/null; then
  az eventgrid system-topic event-subscription update "$@" --endpoint "$endpoint" \
    --included-event-types $types \
    --deadletter-identity systemassigned --deadletter-identity-endpoint "$ACS_TRIAGE_DEADLETTER_CONTAINER_ID" \
    --output none
  echo "postdeploy: updated $subscription on $topic: $types"
else
  # Event Grid retries for 24 hours (1440 minutes), then dead-letters; acs-triage drops duplicates.
  az eventgrid system-topic event-subscription create "$@" --endpoint "$endpoint" --endpoint-type webhook \
    --event-delivery-schema "$schema" --included-event-types $types \
    --max-delivery-attempts 30 --event-ttl 1440 \
    --deadletter-identity systemassigned --deadletter-identity-endpoint "$ACS_TRIAGE_DEADLETTER_CONTAINER_ID" \
    --output none
  echo "postdeploy: subscribed $AZURE_FUNCTION_APP_NAME /api/eventgrid to $types ($schema) as $subscription"
fi
