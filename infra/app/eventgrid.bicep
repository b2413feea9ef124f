// The Event Grid system topic of the ACS resource, deployed into the ACS resource's own resource
// group. An Azure resource can have one system topic only: when it has one already, name it and
// this module uses it. scripts/postdeploy.sh adds the SMS delivery report subscription.
param acsResourceId string
param existingSystemTopicName string
param name string
param tags object

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (empty(existingSystemTopicName)) {
  name: name
  // ACS resources are global, and so is their system topic.
  location: 'global'
  tags: tags
  properties: {
    source: acsResourceId
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

output name string = empty(existingSystemTopicName) ? topic.name : existingSystemTopicName
