"""The AWS side of the dev stack, read from template.yaml so that it cannot drift from what `sam deploy` makes.

    python infra/lambda/dev_stack.py resources STACK TEMPLATE ENV_FILE ADMIN_KEY OPERATOR_KEY PUBLIC_BASE_URL

On the endpoint in AWS_ENDPOINT_URL (refused without one: this never touches a real account), creates:

- the table `OmnichatTable` as `<STACK>-OmnichatTable`, with exactly the template's AttributeDefinitions,
  KeySchema, GlobalSecondaryIndexes, BillingMode and TimeToLiveSpecification;
- the media bucket and queue (`MediaBucket`, `MediaQueue`) as `<stack>-media` and `<STACK>-MediaQueue`;
- the bus `OmnichatBus` under the name the template gives it (`omnichat-${AWS::StackName}`), with no rule
  (moto's PutEvents answers HTTP 500 when a rule has a Lambda target);
- the two platform secrets the template's outputs name (OperatorKeySecretName, FirstAdminKeySecretName),
  holding the given dev keys, which the first-tenant custom resource then takes instead of generating keys.

Idempotent: what exists already is checked to have the same shape (the same secret value) and kept; a
difference is an error that says what differs. Then writes ENV_FILE (KEY=VALUE lines, for
`cargo lambda watch --env-file`): every variable of the template's `Globals.Function.Environment`, evaluated
for this stack (parameters at their defaults), with PUBLIC_BASE_URL replaced by the given local one.
"""

import os
import re
import sys

import boto3
from botocore.exceptions import ClientError
from samcli.yamlhelper import yaml_parse

REGION_FALLBACK = "us-east-1"

# OmnichatTable properties that are not the table's shape: a dev table on moto goes without them.
TABLE_PROPERTIES_SKIPPED = {
    "PointInTimeRecoverySpecification": "backups are an operational setting, not the table's shape",
    "DeletionProtectionEnabled": "a dev table must stay deletable",
    "Tags": "tags change nothing the functions see",
}
TABLE_PROPERTIES_APPLIED = {
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "BillingMode",
    "TimeToLiveSpecification",
}


def fail(message):
    print(f"dev-stack: {message}", file=sys.stderr)
    sys.exit(1)


class Template:
    """The template, and its intrinsic functions evaluated for one stack as far as a dev stack needs."""

    def __init__(self, path, stack, region, names):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml_parse(f.read())
        self.stack = stack
        self.region = region
        self.names = names  # logical id of a resource -> its physical name (what `Ref` answers)

    def resource(self, logical_id, kind):
        resource = self.doc.get("Resources", {}).get(logical_id)
        if not resource or resource.get("Type") != kind:
            fail(f"template.yaml has no {kind} named {logical_id}")
        return resource

    def ref(self, name):
        pseudo = {"AWS::StackName": self.stack, "AWS::Region": self.region, "AWS::URLSuffix": "amazonaws.com",
                  "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
        if name in pseudo:
            return pseudo[name]
        if name in self.names:
            return self.names[name]
        parameter = self.doc.get("Parameters", {}).get(name)
        if parameter is not None and "Default" in parameter:
            return str(parameter["Default"])
        raise ValueError(f"cannot evaluate Ref {name}")

    def evaluate(self, node):
        if isinstance(node, (str, int, float, bool)):
            return str(node)
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return self.ref(node["Ref"])
        if isinstance(node, dict) and set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: self.ref(m.group(1)), node["Fn::Sub"])
        if isinstance(node, dict) and set(node) == {"Fn::If"} and len(node["Fn::If"]) == 3:
            name, when_true, when_false = node["Fn::If"]
            return self.evaluate(when_true if self.condition(name) else when_false)
        raise ValueError(f"cannot evaluate {node!r}")

    def condition(self, name):
        """A condition of the template's Conditions section, for this stack's parameters."""
        node = self.doc.get("Conditions", {}).get(name)
        if node is None:
            raise ValueError(f"template.yaml has no condition {name}")
        return self.holds(node)

    def holds(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (function, arguments), = node.items()
            if function == "Condition":
                return self.condition(arguments)
            if function == "Fn::Equals" and len(arguments) == 2:
                return self.evaluate(arguments[0]) == self.evaluate(arguments[1])
            if function == "Fn::Not" and len(arguments) == 1:
                return not self.holds(arguments[0])
            if function == "Fn::And":
                return all(self.holds(argument) for argument in arguments)
            if function == "Fn::Or":
                return any(self.holds(argument) for argument in arguments)
        raise ValueError(f"cannot evaluate the condition {node!r}")


def table_request(properties, name):
    unknown = set(properties) - TABLE_PROPERTIES_APPLIED - set(TABLE_PROPERTIES_SKIPPED)
    if unknown:
        fail(f"OmnichatTable has properties the dev stack does not know: {sorted(unknown)} "
             "(teach infra/lambda/dev_stack.py to apply or skip them, with the reason)")
    request = {"TableName": name}
    for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode"):
        if key in properties:
            request[key] = properties[key]
    return request


def normalized_shape(table):
    """What makes two tables the same for the functions, in a comparable form."""
    gsis = {
        index["IndexName"]: (
            sorted((k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]),
            index["Projection"]["ProjectionType"],
        )
        for index in table.get("GlobalSecondaryIndexes", [])
    }
    billing = table.get("BillingModeSummary", {}).get("BillingMode", table.get("BillingMode", "PROVISIONED"))
    return {
        "attributes": sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
        "keys": sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]),
        "indexes": gsis,
        "billing": billing,
    }


def ensure_table(dynamodb, request, ttl):
    name = request["TableName"]
    want = normalized_shape(request)
    try:
        dynamodb.create_table(**request)
        print(f"dev-stack: table {name} created (keys, {len(want['indexes'])} indexes, {want['billing']})")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
        have = normalized_shape(dynamodb.describe_table(TableName=name)["Table"])
        if have != want:
            fail(f"the table {name} exists with another shape than template.yaml's OmnichatTable:\n"
                 f"  template: {want}\n  existing: {have}\n"
                 "delete it (or reset moto: POST $AWS_ENDPOINT_URL/moto-api/reset) and run again")
        print(f"dev-stack: table {name} exists with the template's shape")
    if ttl:
        attribute, enabled = ttl["AttributeName"], str(ttl.get("Enabled", False)).lower() == "true"
        current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        current_on = current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
        if current_on != enabled or (enabled and current.get("AttributeName") != attribute):
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": attribute, "Enabled": enabled}
            )
        check = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if enabled and (check.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING")
                        or check.get("AttributeName") != attribute):
            fail(f"the table {name}'s TTL is {check}, not on {attribute}")


def ensure_bus(events, name):
    try:
        events.create_event_bus(Name=name)
        print(f"dev-stack: event bus {name} created")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
        print(f"dev-stack: event bus {name} exists")
    # A rule with a Lambda target makes moto's PutEvents answer 500 for the functions that publish.
    rules = events.list_rules(EventBusName=name).get("Rules", [])
    for rule in rules:
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=name).get("Targets", [])
        if any(":lambda:" in t.get("Arn", "") for t in targets):
            fail(f"the bus {name} has the rule {rule['Name']} with a Lambda target; moto's PutEvents fails with "
                 "it (delete the rule)")


def ensure_media(session, template, names):
    """The media bucket and queue (`MediaBucket`, `MediaQueue`) as `<stack>-media` buckets and queues: what
    `Ref` answers for them is the bucket's name and the queue's URL. Creating either again is harmless."""
    template.resource("MediaBucket", "AWS::S3::Bucket")
    template.resource("MediaQueue", "AWS::SQS::Queue")
    bucket = f"{template.stack.lower()}-media"
    s3 = session.client("s3")
    try:
        s3.create_bucket(Bucket=bucket)
        print(f"dev-stack: media bucket {bucket} created")
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        print(f"dev-stack: media bucket {bucket} exists")
    names["MediaBucket"] = bucket
    names["MediaQueue"] = session.client("sqs").create_queue(QueueName=f"{template.stack}-MediaQueue")["QueueUrl"]


def ensure_secret(secrets, name, value):
    try:
        secrets.create_secret(Name=name, SecretString=value)
        print(f"dev-stack: secret {name} created (a dev key)")
        return
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceExistsException":
            raise
    current = secrets.get_secret_value(SecretId=name).get("SecretString")
    if current != value:
        fail(f"the secret {name} exists with another value than the dev key; the first tenant was made with "
             "that one. Reset moto (POST $AWS_ENDPOINT_URL/moto-api/reset) and run again")
    print(f"dev-stack: secret {name} exists with the dev key")


def resources(stack, template_path, env_file, admin_key, operator_key, public_base_url):
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if not re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/?$", endpoint):
        fail(f"AWS_ENDPOINT_URL must be a loopback endpoint such as moto's (got {endpoint!r}); "
             "run under infra/moto/with-moto.sh")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION_FALLBACK
    for key, what in ((admin_key, "admin key"), (operator_key, "operator key")):
        if len(key) < 24:
            fail(f"the dev {what} must have at least 24 characters")

    names = {"OmnichatTable": f"{stack}-OmnichatTable"}
    template = Template(template_path, stack, region, names)
    bus = template.resource("OmnichatBus", "AWS::Events::EventBus")
    names["OmnichatBus"] = template.evaluate(bus["Properties"]["Name"])
    table = template.resource("OmnichatTable", "AWS::DynamoDB::Table")["Properties"]

    session = boto3.session.Session(region_name=region)
    ensure_table(session.client("dynamodb"), table_request(table, names["OmnichatTable"]),
                 table.get("TimeToLiveSpecification"))
    ensure_bus(session.client("events"), names["OmnichatBus"])
    ensure_media(session, template, names)

    environment = template.doc["Globals"]["Function"]["Environment"]["Variables"]
    env = {}
    for key, value in environment.items():
        if key == "PUBLIC_BASE_URL":
            env[key] = public_base_url
            continue
        try:
            env[key] = template.evaluate(value)
        except ValueError as error:
            fail(f"Globals.Function.Environment.{key}: {error}")

    outputs = template.doc.get("Outputs", {})
    secrets = session.client("secretsmanager")
    for output, value in (("OperatorKeySecretName", operator_key), ("FirstAdminKeySecretName", admin_key)):
        if output not in outputs:
            fail(f"template.yaml has no output {output} (the secret the first-tenant function reads)")
        name = template.evaluate(outputs[output]["Value"])
        if not name.startswith(env.get("SECRET_PREFIX", "\0")):
            fail(f"the secret {name} is not under the functions' SECRET_PREFIX {env.get('SECRET_PREFIX')}")
        ensure_secret(secrets, name, value)

    with open(env_file, "w", encoding="utf-8") as f:
        for key, value in env.items():
            if "\n" in value:
                fail(f"{key} has a line break; an env file cannot hold it")
            f.write(f"{key}={value}\n")


def main():
    if len(sys.argv) == 8 and sys.argv[1] == "resources":
        resources(*sys.argv[2:])
        return
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
