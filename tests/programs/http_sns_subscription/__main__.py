"""Violates sns-subscriptions-use-https: quota alerts go to a webhook over plain HTTP."""

import pulumi_aws as aws

topic = aws.sns.Topic("quota-alerts")
aws.sns.TopicSubscription("webhook", topic=topic.arn, protocol="http", endpoint="http://hooks.example.com/quota")
