"""Creates template.yaml as a CloudFormation stack on moto's server and checks what the stack made.

Run by infra/aws/moto-stack.sh (under infra/moto/with-moto.sh, with infra/moto/cfn_models.py loaded into
the server). Steps:

1. The SAM template is translated to plain CloudFormation with samtranslator (what `sam deploy` has AWS
   do), once with Tracing=Disabled and once with the parameters used below, and the translation is checked:
   every function logs to its own log group, and SAM's X-Ray grant follows the Tracing parameter.
2. Resources moto cannot create are removed, each printed with the reason; references to them become the
   literal "dropped-<LogicalId>".
3. The stack is created on moto (an SNS topic as AlarmTopicArn, LogRetentionDays=14), and then the services
   are asked, through their own APIs, for the table, bus, rules, queues, the mailbox poll queue's event
   source mapping, functions, log groups, metric filters, alarms and roles the template promises, and the
   live updates (check_live: the WebSocket API from the template text, since moto's CloudFormation makes
   no API Gateway v2 resource; the live function's rule, environment, permissions and grants from moto).
   Any one missing or different fails the run.
"""

import ast
import copy
import io
import json
import os
import re
import sys
import zipfile

import logging

import boto3
from samcli.yamlhelper import yaml_parse
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

# samtranslator warns of its own unpublished usage metrics; nothing is published from here.
logging.getLogger("samtranslator").setLevel(logging.ERROR)

STACK = "omnichat-moto"
CODE_BUCKET = "omnichat-moto-code"
LOG_RETENTION_DAYS = 14
MESSAGE_RETENTION_DAYS = 90

# Resource types moto 5.2.1's CloudFormation cannot create, and why.
UNSUPPORTED = {
    "AWS::ApiGatewayV2::Api": "moto's CloudFormation has no API Gateway v2 resources",
    "AWS::ApiGatewayV2::Stage": "moto's CloudFormation has no API Gateway v2 resources",
    "AWS::ApiGatewayV2::Integration": "moto's CloudFormation has no API Gateway v2 resources",
    "AWS::ApiGatewayV2::Route": "moto's CloudFormation has no API Gateway v2 resources",
    "AWS::ApiGatewayV2::DomainName": "moto's CloudFormation has no API Gateway v2 resources",
    "AWS::ApiGatewayV2::ApiMapping": "moto's CloudFormation has no API Gateway v2 resources",
    # The WebSocket API's too: checked in the template instead (check_live).
    "AWS::ApiGatewayV2::Authorizer": "moto's CloudFormation has no API Gateway v2 resources",
    "Custom::FirstTenant": "a custom resource invokes its Lambda function, which moto runs only in Docker",
    # Checked in the template instead (check_media).
    "AWS::S3::BucketPolicy": "moto's CloudFormation lists it without a logical id in DescribeStackResources",
}

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def translate(template, parameters):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = copy.deepcopy(template)
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            # Code from moto's S3 (uploaded below) instead of the local build.
            name = resource["Metadata"]["BuildProperties"]["Binary"]
            resource["Properties"]["CodeUri"] = {"Bucket": CODE_BUCKET, "Key": f"{name}.zip"}
    translator = Translator(managed_policy_map=None, sam_parser=Parser())
    return translator.translate(sam_template=template, parameter_values=dict(parameters))


def functions_of(cfn):
    return {k: r for k, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}


def role_managed_policies(cfn, function):
    role = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [json.dumps(arn) for arn in cfn["Resources"][role]["Properties"].get("ManagedPolicyArns", [])]


def check_translation(sam, parameters):
    disabled = translate(sam, {**parameters, "Tracing": "Disabled"})
    active = translate(sam, {**parameters, "Tracing": "Active"})
    for name, function in functions_of(disabled).items():
        props = function["Properties"]
        check("TracingConfig" not in props, f"{name}: TracingConfig with Tracing=Disabled")
        check(
            not any("AWSXrayWriteOnlyAccess" in p for p in role_managed_policies(disabled, name)),
            f"{name}: X-Ray write grant with Tracing=Disabled",
        )
        group = props.get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        check(
            group in disabled["Resources"] and disabled["Resources"][group]["Type"] == "AWS::Logs::LogGroup",
            f"{name}: LoggingConfig.LogGroup does not name a log group of the template",
        )
        check(
            not any("AWSLambdaSQSQueueExecutionRole" in p for p in role_managed_policies(disabled, name)),
            f"{name}: AWSLambdaSQSQueueExecutionRole (SQS on every queue): grant the one queue inline",
        )
    for name, function in functions_of(active).items():
        check(
            function["Properties"].get("TracingConfig") == {"Mode": {"Ref": "Tracing"}},
            f"{name}: no TracingConfig with Tracing=Active",
        )
        check(
            any("AWSXrayWriteOnlyAccess" in p for p in role_managed_policies(active, name)),
            f"{name}: no X-Ray write grant with Tracing=Active",
        )


def drop_unsupported(cfn):
    dropped = {k: r["Type"] for k, r in cfn["Resources"].items() if r["Type"] in UNSUPPORTED}
    for name in dropped:
        del cfn["Resources"][name]
    print(f"moto-stack: dropped {len(dropped)} resource(s) moto cannot create:")
    for name, kind in sorted(dropped.items()):
        print(f"  {name} ({kind}): {UNSUPPORTED[kind]}")

    def replace(node):
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in dropped:
                return f"dropped-{node['Ref']}"
            if set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in dropped:
                return f"dropped-{node['Fn::GetAtt'][0]}"
            if set(node) == {"Fn::Sub"}:
                text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
                text = re.sub(
                    r"\$\{([A-Za-z0-9]+)(\.[A-Za-z0-9.]+)?\}",
                    lambda m: f"dropped-{m.group(1)}" if m.group(1) in dropped else m.group(0),
                    text,
                )
                if isinstance(node["Fn::Sub"], str):
                    return {"Fn::Sub": text}
                return {"Fn::Sub": [text, replace(node["Fn::Sub"][1])]}
            return {k: replace(v) for k, v in node.items()}
        if isinstance(node, list):
            return [replace(v) for v in node]
        return node

    for name, resource in cfn["Resources"].items():
        depends = resource.get("DependsOn")
        if depends:
            depends = [depends] if isinstance(depends, str) else depends
            resource["DependsOn"] = [d for d in depends if d not in dropped]
        cfn["Resources"][name] = replace(resource)
    cfn["Outputs"] = {k: v for k, v in replace(cfn.get("Outputs", {})).items()}
    return dropped


def main():
    template_path = sys.argv[1]
    with open(template_path, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    sam_functions = {
        k: r for k, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    }

    session = boto3.session.Session(region_name="us-east-1")
    sns = session.client("sns")
    topic = sns.create_topic(Name=f"{STACK}-alarms")["TopicArn"]
    parameters = {
        "AlarmTopicArn": topic,
        "LogRetentionDays": str(LOG_RETENTION_DAYS),
        "MessageRetentionDays": str(MESSAGE_RETENTION_DAYS),
    }

    check_translation(sam, parameters)
    cfn = translate(sam, {**parameters, "Tracing": "Disabled"})
    dropped = drop_unsupported(cfn)

    # The functions' code: moto keeps it and never runs it (that needs Docker), so its content is moot.
    s3 = session.client("s3")
    s3.create_bucket(Bucket=CODE_BUCKET)
    for resource in sam_functions.values():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("bootstrap", "moto stores this package and never runs it\n")
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        s3.put_object(Bucket=CODE_BUCKET, Key=f"{binary}.zip", Body=buffer.getvalue())

    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        sys.exit(f"moto-stack: stack {stack['StackStatus']}: {stack.get('StackStatusReason')}")
    created = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId")
        for r in cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]
    }
    for name, resource in cfn["Resources"].items():
        if "Condition" in resource:
            continue
        check(name in created, f"{name} ({resource['Type']}) is not among the stack's resources")
    print(f"moto-stack: stack {STACK} created with {len(created)} resources")

    check_table(session, created)
    check_bus_and_rules(session, created, sam)
    check_functions(session, created, sam_functions)
    check_mailbox_poll_queue(session, created, sam)
    check_media(session, created, sam)
    check_live(session, created, sam)
    check_logs(session, created, sam_functions)
    check_alarms(session, created, sam_functions, topic)
    check_roles(session, created, cfn)

    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    check(
        outputs.get("OperatorKeySecretName") == f"omnichat/{STACK}/platform/operator-key",
        f"output OperatorKeySecretName is {outputs.get('OperatorKeySecretName')!r}",
    )
    check(
        outputs.get("FirstAdminKeySecretName") == f"omnichat/{STACK}/platform/first-admin-key",
        f"output FirstAdminKeySecretName is {outputs.get('FirstAdminKeySecretName')!r}",
    )

    check(outputs.get("LiveUrl") == "wss://dropped-LiveApi.execute-api.us-east-1.amazonaws.com/live",
          f"output LiveUrl is {outputs.get('LiveUrl')!r}")
    check(outputs.get("WorkspaceUrl") == "https://dropped-HttpApi.execute-api.us-east-1.amazonaws.com/app/",
          f"output WorkspaceUrl is {outputs.get('WorkspaceUrl')!r}")
    workspace = sam["Outputs"]["WorkspaceUrl"]["Value"]["Fn::If"]
    check(workspace[0] == "HasDomain" and workspace[1] == {"Fn::Sub": "https://${DomainName}/app/"},
          f"output WorkspaceUrl does not follow the custom domain: {workspace}")

    if failures:
        print(f"moto-stack: {len(failures)} check(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        sys.exit(1)
    print(f"moto-stack: every check passed ({len(dropped)} resources dropped, listed above)")


def check_table(session, created):
    dynamodb = session.client("dynamodb")
    table = dynamodb.describe_table(TableName=created["OmnichatTable"])["Table"]
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    check(sorted(indexes) == ["gsi1", "gsi2", "gsi3"], f"table indexes: {sorted(indexes)}")
    for name, index in indexes.items():
        keys = [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]]
        check(keys == [(f"{name}pk", "HASH"), (f"{name}sk", "RANGE")], f"table index {name}: {keys}")
        check(index["Projection"]["ProjectionType"] == "ALL", f"table index {name}: not all attributes")
    check(
        table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST",
        "table: not billed per request",
    )
    check(table.get("DeletionProtectionEnabled") is True, "table: deletion protection off")
    ttl = dynamodb.describe_time_to_live(TableName=created["OmnichatTable"])["TimeToLiveDescription"]
    check(
        ttl.get("TimeToLiveStatus") == "ENABLED" and ttl.get("AttributeName") == "expires_at",
        f"table TTL: {ttl}",
    )
    backups = dynamodb.describe_continuous_backups(TableName=created["OmnichatTable"])
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    check(pitr["PointInTimeRecoveryStatus"] == "ENABLED", "table: point-in-time recovery off")
    print(f"moto-stack: table {created['OmnichatTable']}: 3 GSIs, TTL on expires_at, deletion protection, PITR")


def check_bus_and_rules(session, created, sam):
    events = session.client("events")
    bus = events.describe_event_bus(Name=created["OmnichatBus"])
    check(bus["Name"] == f"omnichat-{STACK}", f"bus name {bus['Name']}")
    lambda_ = session.client("lambda")
    arn_of = {
        name: lambda_.get_function(FunctionName=created[name])["Configuration"]["FunctionArn"]
        for name in created
        if name.endswith("Function")
    }
    # Every event of every function in the SAM template: a rule with the function as its target.
    expected = []
    for name, resource in sam["Resources"].items():
        for event_name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            expected.append((name, event_name, event))
    rules = {}
    for bus_name in ("default", created["OmnichatBus"]):
        for rule in events.list_rules(EventBusName=bus_name)["Rules"]:
            rules[rule["Name"]] = (bus_name, rule)
    for function, event_name, event in expected:
        logical = f"{function}{event_name}"
        if not check(logical in created, f"rule {logical} of {function} not created"):
            continue
        bus_name, rule = rules.get(created[logical], (None, None))
        if not check(rule is not None, f"rule {logical} not listed on its bus"):
            continue
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus_name)["Targets"]
        check(
            [t["Arn"] for t in targets] == [arn_of[function]],
            f"rule {logical}: targets {[t['Arn'] for t in targets]}, not {function}",
        )
        if event["Type"] == "Schedule":
            check(
                rule.get("ScheduleExpression") == event["Properties"]["Schedule"],
                f"rule {logical}: schedule {rule.get('ScheduleExpression')}",
            )
        else:
            check(bus_name == created["OmnichatBus"], f"rule {logical} is on {bus_name}, not the omnichat bus")
            pattern = json.loads(rule["EventPattern"])
            check(
                pattern == event["Properties"]["Pattern"],
                f"rule {logical}: pattern {pattern}",
            )
    print(f"moto-stack: bus {bus['Name']} and {len(expected)} rules, each targeting its function")
    check_router_patterns(session, expected)
    check_live_pattern(session, expected)


# Events of every kind as the functions publish them (shared/src/ports/events.rs, docs/events/), and
# whether the router acts on each (DomainEvent::for_router): only those may match its rules.
ROUTER_CASES = [
    ("DialogOpened", {}, True),
    ("DialogClosed", {"assignee_id": "019b7a2e-0000-7000-8000-000000000004"}, True),
    ("DialogClosed", {}, False),
    ("MessageReceived", {"message_id": "019b7a2e-0000-7000-8000-000000000005", "chatbot": True}, True),
    ("MessageReceived", {"message_id": "019b7a2e-0000-7000-8000-000000000005"}, False),
    ("DialogAssigned", {"employee_id": "019b7a2e-0000-7000-8000-000000000004"}, False),
    ("MessageSent", {"message_id": "019b7a2e-0000-7000-8000-000000000005"}, False),
    ("MessageFailed", {"message_id": "019b7a2e-0000-7000-8000-000000000005", "reason": "blocked"}, False),
]


def check_router_patterns(session, expected):
    """The router's rule patterns, through EventBridge's own routing: each is copied to a probe rule on a
    probe bus (the stack's bus would invoke the function too) whose target is a queue, events of every kind
    are published, and what reaches the queue must be exactly the events the router acts on."""
    events = session.client("events")
    sqs = session.client("sqs")
    bus_name = "router-probe"
    events.create_event_bus(Name=bus_name)
    patterns = [
        json.dumps(event["Properties"]["Pattern"])
        for function, _, event in expected
        if function == "RouterFunction" and event["Type"] == "EventBridgeRule"
    ]
    check(len(patterns) == 3, f"router rules: {len(patterns)}, not 3")
    queue_url = sqs.create_queue(QueueName="router-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for index, pattern in enumerate(patterns):
        events.put_rule(Name=f"router-probe-{index}", EventBusName=bus_name, EventPattern=pattern)
        events.put_targets(Rule=f"router-probe-{index}", EventBusName=bus_name,
                           Targets=[{"Id": "probe", "Arn": queue_arn}])
    for case, (detail_type, extra, _) in enumerate(ROUTER_CASES):
        detail = probe_detail(detail_type, case, extra)
        sent = events.put_events(Entries=[{
            "Source": "omnichat", "DetailType": detail_type, "Detail": json.dumps(detail),
            "EventBusName": bus_name,
        }])
        check(sent["FailedEntryCount"] == 0, f"probe event {detail_type} not accepted")
    arrived = []
    for _ in range(10):
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = batch.get("Messages", [])
        if not messages:
            break
        for message in messages:
            arrived.append(int(json.loads(message["Body"])["detail"]["dialog_id"].rsplit("-", 1)[1]))
    wanted = [case for case, (_, _, for_router) in enumerate(ROUTER_CASES) if for_router]
    check(sorted(arrived) == wanted,
          f"the router's rules delivered cases {sorted(arrived)}, not {wanted}: "
          f"{[ROUTER_CASES[c][:2] for c in sorted(set(arrived) ^ set(wanted))]}")
    for index in range(len(patterns)):
        events.remove_targets(Rule=f"router-probe-{index}", EventBusName=bus_name, Ids=["probe"])
        events.delete_rule(Name=f"router-probe-{index}", EventBusName=bus_name)
    sqs.delete_queue(QueueUrl=queue_url)
    events.delete_event_bus(Name=bus_name)
    print(f"moto-stack: the router's {len(patterns)} rules deliver exactly the {len(wanted)} "
          f"of {len(ROUTER_CASES)} event cases it acts on")


# Every detail type of the bus (shared/src/ports/events.rs): a page may be told of each (usecases::live).
LIVE_DETAIL_TYPES = ["DialogOpened", "DialogAssigned", "DialogQueued", "MessageReceived", "MessageSent",
                     "MessageDelivered", "MessageFailed", "DialogClosed"]


def check_live_pattern(session, expected):
    """The live function's rule, through EventBridge's own routing as the router's are checked (moto has no
    TestEventPattern): the pattern on a probe rule of a probe bus with a queue as its target, events
    published, and what reaches the queue must be every event of the bus (with or without the fields the
    router's rules look at), and not an event of another source or detail type."""
    events = session.client("events")
    sqs = session.client("sqs")
    patterns = [
        event["Properties"]["Pattern"]
        for function, _, event in expected
        if function == "LiveFunction" and event["Type"] == "EventBridgeRule"
    ]
    if not check(len(patterns) == 1, f"live rules: {len(patterns)}, not 1"):
        return
    bus_name = "live-probe"
    events.create_event_bus(Name=bus_name)
    queue_url = sqs.create_queue(QueueName="live-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="live-probe", EventBusName=bus_name, EventPattern=json.dumps(patterns[0]))
    events.put_targets(Rule="live-probe", EventBusName=bus_name, Targets=[{"Id": "probe", "Arn": queue_arn}])
    cases = [("omnichat", detail_type, {}, True) for detail_type in LIVE_DETAIL_TYPES] + [
        ("omnichat", "MessageReceived", {"chatbot": True}, True),
        ("omnichat", "DialogClosed", {"assignee_id": "019b7a2e-0000-7000-8000-000000000004"}, True),
        ("omnichat", "TenantCreated", {}, False),
        ("someone.else", "DialogOpened", {}, False),
    ]
    for case, (source, detail_type, extra, _) in enumerate(cases):
        detail = probe_detail(detail_type, case, extra)
        sent = events.put_events(Entries=[{
            "Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": bus_name,
        }])
        check(sent["FailedEntryCount"] == 0, f"probe event {detail_type} not accepted")
    arrived = []
    for _ in range(10):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            break
        for message in messages:
            arrived.append(int(json.loads(message["Body"])["detail"]["dialog_id"].rsplit("-", 1)[1]))
    wanted = [case for case, (_, _, _, delivered) in enumerate(cases) if delivered]
    check(sorted(arrived) == wanted,
          f"the live rule delivered cases {sorted(arrived)}, not {wanted}: "
          f"{[cases[c][:2] for c in sorted(set(arrived) ^ set(wanted))]}")
    events.remove_targets(Rule="live-probe", EventBusName=bus_name, Ids=["probe"])
    events.delete_rule(Name="live-probe", EventBusName=bus_name)
    sqs.delete_queue(QueueUrl=queue_url)
    events.delete_event_bus(Name=bus_name)
    print(f"moto-stack: the live rule delivers all {len(LIVE_DETAIL_TYPES)} detail types of the bus "
          f"({len(wanted)} cases), not another source's or detail type's")


def check_live(session, created, sam):
    """The live updates: the WebSocket API, its authorizer, routes, integration, stage and invoke permissions
    from the template (moto's CloudFormation creates no API Gateway v2 resource), and from moto the live
    function's callback URL, the API function's OMNICHAT_LIVE_URL, the permissions' source ARNs and the web
    app's routes on the HTTP API (template)."""
    resources = sam["Resources"]
    lambda_ = session.client("lambda")

    def props(name, kind):
        resource = resources.get(name, {})
        check(resource.get("Type") == kind, f"{name} is {resource.get('Type')}, not {kind}")
        return resource.get("Properties", {})

    invocations = {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                                "${LiveFunction.Arn}/invocations"}
    api = props("LiveApi", "AWS::ApiGatewayV2::Api")
    check(api.get("ProtocolType") == "WEBSOCKET" and api.get("RouteSelectionExpression") == "$request.body.action",
          f"LiveApi: {api}")
    authorizer = props("LiveAuthorizer", "AWS::ApiGatewayV2::Authorizer")
    check(authorizer.get("ApiId") == {"Ref": "LiveApi"} and authorizer.get("AuthorizerType") == "REQUEST"
          and authorizer.get("IdentitySource") == ["route.request.querystring.ticket"]
          and authorizer.get("AuthorizerUri") == invocations, f"LiveAuthorizer: {authorizer}")
    integration = props("LiveIntegration", "AWS::ApiGatewayV2::Integration")
    check(integration.get("ApiId") == {"Ref": "LiveApi"} and integration.get("IntegrationType") == "AWS_PROXY"
          and integration.get("IntegrationUri") == invocations, f"LiveIntegration: {integration}")
    routes = {}
    for name, resource in resources.items():
        if resource.get("Type") == "AWS::ApiGatewayV2::Route" and resource["Properties"].get("ApiId") == {"Ref": "LiveApi"}:
            routes[resource["Properties"]["RouteKey"]] = resource["Properties"]
    check(sorted(routes) == ["$connect", "$default", "$disconnect"], f"LiveApi routes: {sorted(routes)}")
    for key, route in routes.items():
        check(route.get("Target") == {"Fn::Sub": "integrations/${LiveIntegration}"}, f"route {key}: target {route}")
        authorized = route.get("AuthorizationType") == "CUSTOM" and route.get("AuthorizerId") == {"Ref": "LiveAuthorizer"}
        check(authorized == (key == "$connect"), f"route {key}: authorization {route.get('AuthorizationType')}")
    stage = props("LiveStage", "AWS::ApiGatewayV2::Stage")
    check(stage.get("ApiId") == {"Ref": "LiveApi"} and stage.get("StageName") == "live" and stage.get("AutoDeploy") is True
          and stage.get("DefaultRouteSettings", {}).get("ThrottlingRateLimit"), f"LiveStage: {stage}")

    # The permissions moto made: API Gateway may invoke the live function for the three routes and the
    # authorizer of this API only.
    policy = json.loads(lambda_.get_policy(FunctionName=created["LiveFunction"])["Policy"])
    sources = sorted(
        st.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn", "")
        for st in policy["Statement"] if st.get("Principal", {}).get("Service") == "apigateway.amazonaws.com"
    )
    prefix = "arn:aws:execute-api:us-east-1:123456789012:dropped-LiveApi/"
    check(sources == sorted([f"{prefix}*/$connect", f"{prefix}*/$disconnect", f"{prefix}*/$default",
                             f"{prefix}authorizers/dropped-LiveAuthorizer"]),
          f"LiveFunction: API Gateway may invoke it from {sources}")

    # EventBridge's retries of an invocation it could not make; the function's own (one, then the dead-letter
    # queue) are checked with the other functions'.
    targets = session.client("events").list_targets_by_rule(
        Rule=created["LiveFunctionDomainEvents"], EventBusName=created["OmnichatBus"])["Targets"]
    retry = targets[0].get("RetryPolicy") if targets else None
    check(retry == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 120},
          f"LiveFunctionDomainEvents: retry policy {retry}")

    live_env = lambda_.get_function(FunctionName=created["LiveFunction"])["Configuration"]["Environment"]["Variables"]
    check(live_env.get("LIVE_CALLBACK_URL") == "https://dropped-LiveApi.execute-api.us-east-1.amazonaws.com/live",
          f"LiveFunction: LIVE_CALLBACK_URL {live_env.get('LIVE_CALLBACK_URL')}")
    check(live_env.get("OMNICHAT_FUNCTION_TIMEOUT_SECONDS") == "29", "LiveFunction: function time-out")
    api_env = lambda_.get_function(FunctionName=created["ApiFunction"])["Configuration"]["Environment"]["Variables"]
    check(api_env.get("OMNICHAT_LIVE_URL") == "wss://dropped-LiveApi.execute-api.us-east-1.amazonaws.com/live",
          f"ApiFunction: OMNICHAT_LIVE_URL {api_env.get('OMNICHAT_LIVE_URL')}")

    # The web app on the HTTP API: its routes to the API function, and the permissions.
    app_routes = sorted(
        r["Properties"]["RouteKey"] for r in resources.values()
        if r.get("Type") == "AWS::ApiGatewayV2::Route" and r["Properties"].get("ApiId") == {"Ref": "HttpApi"}
        and r["Properties"]["RouteKey"].startswith("GET /app")
        and r["Properties"].get("Target") == {"Fn::Sub": "integrations/${ApiIntegration}"}
    )
    check(app_routes == ["GET /app", "GET /app/", "GET /app/{proxy+}"], f"the web app's routes: {app_routes}")
    api_policy = json.loads(lambda_.get_policy(FunctionName=created["ApiFunction"])["Policy"])
    api_sources = {st.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn", "") for st in api_policy["Statement"]}
    for suffix in ("/*/GET/app", "/*/GET/app/*"):
        check(any(source.endswith(suffix) for source in api_sources), f"ApiFunction: no invoke permission for {suffix}")
    print("moto-stack: the WebSocket API (in the template: authorizer on $connect, 3 routes, stage live), "
          "the live function's callback URL and invoke permissions, OMNICHAT_LIVE_URL, the web app's routes")


def check_functions(session, created, sam_functions):
    lambda_ = session.client("lambda")
    sqs = session.client("sqs")
    dlq_url = created["ScheduledJobsDeadLetterQueue"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    with_dlq = 0
    for name, resource in sam_functions.items():
        config = lambda_.get_function(FunctionName=created[name])["Configuration"]
        check(config["Runtime"] == "provided.al2023", f"{name}: runtime {config['Runtime']}")
        check(config.get("Architectures") == ["arm64"], f"{name}: architectures {config.get('Architectures')}")
        env = config.get("Environment", {}).get("Variables", {})
        check(env.get("TABLE_NAME") == created["OmnichatTable"], f"{name}: TABLE_NAME {env.get('TABLE_NAME')}")
        check(env.get("EVENT_BUS_NAME") == created["OmnichatBus"], f"{name}: EVENT_BUS_NAME")
        check(env.get("SECRET_PREFIX") == f"omnichat/{STACK}/", f"{name}: SECRET_PREFIX {env.get('SECRET_PREFIX')}")
        check(
            str(env.get("MESSAGE_RETENTION_DAYS")) == str(MESSAGE_RETENTION_DAYS),
            f"{name}: MESSAGE_RETENTION_DAYS {env.get('MESSAGE_RETENTION_DAYS')}",
        )
        if "EventInvokeConfig" in resource["Properties"]:
            configs = lambda_.list_function_event_invoke_configs(FunctionName=created[name])
            items = configs.get("FunctionEventInvokeConfigs", [])
            destination = items[0].get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") if items else None
            check(destination == dlq_arn, f"{name}: failed runs go to {destination}, not the dead-letter queue")
            check(
                bool(items) and int(items[0].get("MaximumRetryAttempts", -1)) == 1,
                f"{name}: retries of a failed run: {items[0].get('MaximumRetryAttempts') if items else None}",
            )
            with_dlq += 1
    check(with_dlq == 4, f"{with_dlq} functions send failed runs to the dead-letter queue, not 4")
    print(f"moto-stack: {len(sam_functions)} functions (arm64, provided.al2023, environment), "
          f"{with_dlq} with the dead-letter queue {dlq_arn.rsplit(':', 1)[1]}")


def check_mailbox_poll_queue(session, created, sam):
    """The e-mail poller's fan-out: the queue (visibility 6x the function's timeout, a redrive policy to its
    dead-letter queue), its URL in the function's environment, and the event source mapping (one item per
    invocation, failed records reported, the concurrency cap of EmailPollConcurrency)."""
    sqs = session.client("sqs")
    lambda_ = session.client("lambda")
    url = created["MailboxPollQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=created["MailboxPollDeadLetterQueue"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    timeout = int(sam["Resources"]["EmailPollerFunction"]["Properties"]["Timeout"])
    check(
        int(attributes.get("VisibilityTimeout", 0)) >= 6 * timeout,
        f"MailboxPollQueue: visibility timeout {attributes.get('VisibilityTimeout')} s, not 6 x {timeout} s",
    )
    redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
    check(
        redrive.get("deadLetterTargetArn") == dlq_arn and 1 <= int(redrive.get("maxReceiveCount", 0)) <= 5,
        f"MailboxPollQueue: redrive policy {redrive}, not to {dlq_arn}",
    )
    env = lambda_.get_function(FunctionName=created["EmailPollerFunction"])["Configuration"]["Environment"]
    check(env["Variables"].get("WORK_QUEUE_URL") == url, f"EmailPollerFunction: WORK_QUEUE_URL {env['Variables'].get('WORK_QUEUE_URL')}")
    queue_arn = attributes["QueueArn"]
    mappings = lambda_.list_event_source_mappings(FunctionName=created["EmailPollerFunction"])["EventSourceMappings"]
    mapping = next((m for m in mappings if m["EventSourceArn"] == queue_arn), {})
    check(bool(mapping), f"EmailPollerFunction: no event source mapping on {queue_arn}: {mappings}")
    check(mapping.get("BatchSize") == 1, f"MailboxPollEvents: batch size {mapping.get('BatchSize')}")
    check(
        mapping.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
        f"MailboxPollEvents: response types {mapping.get('FunctionResponseTypes')}",
    )
    default = sam["Parameters"]["EmailPollConcurrency"]["Default"]
    cap = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
    check(str(cap) == str(default), f"MailboxPollEvents: maximum concurrency {cap}, not {default}")
    media_arn = sqs.get_queue_attributes(QueueUrl=created["MediaQueue"], AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    others = [m for m in lambda_.list_event_source_mappings()["EventSourceMappings"]
              if m["EventSourceArn"] not in (queue_arn, media_arn)]
    check(not others, f"event source mappings other than the mailbox poll and media queues': {others}")
    print(f"moto-stack: mailbox poll queue (visibility {attributes['VisibilityTimeout']} s, "
          f"{redrive.get('maxReceiveCount')} receives then its dead-letter queue), drained by EmailPollerFunction "
          f"one item at a time, at most {cap} at once")


def probe_detail(detail_type, case, extra):
    """A domain event's detail as omnichat publishes it (its `type` the detail type in snake_case), the
    dialog numbered by `case` so each probe's delivery can be told apart."""
    return {
        "version": 1,
        "type": "".join(f"_{c.lower()}" if c.isupper() else c for c in detail_type).lstrip("_"),
        "tenant_id": "019b7a2e-0000-7000-8000-000000000001",
        "channel_id": "019b7a2e-0000-7000-8000-000000000002",
        "dialog_id": f"019b7a2e-0000-7000-8000-{case:012d}",
        **extra,
    }


def check_media(session, created, sam):
    """The media path: the bucket (encrypted, public access blocked, uploads expiring after a day, TLS only),
    the queue (visibility 6x the media function's timeout, a redrive policy) drained by the media function
    with failed records reported, and MEDIA_BUCKET / MEDIA_QUEUE_URL in every function's environment."""
    s3 = session.client("s3")
    sqs = session.client("sqs")
    lambda_ = session.client("lambda")
    bucket = created["MediaBucket"]
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    check(
        encryption and encryption[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256",
        f"MediaBucket: encryption {encryption}",
    )
    # moto's CloudFormation does not apply the public access block: the template's is checked.
    block = sam["Resources"]["MediaBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    check(all(block.get(k) is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                             "RestrictPublicBuckets")), f"MediaBucket: public access block {block}")
    # Nor the lifecycle rules: the template's are checked, the retention rule's condition included.
    rules = sam["Resources"]["MediaBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    uploads = [r for r in rules if isinstance(r, dict) and r.get("Prefix") == "uploads/"]
    check(len(uploads) == 1 and uploads[0].get("ExpirationInDays") == 1, f"MediaBucket: uploads/ rule {uploads}")
    retention = [r["Fn::If"] for r in rules if isinstance(r, dict) and "Fn::If" in r]
    check(
        len(retention) == 1 and retention[0][0] == "KeepsMessagesForever"
        and retention[0][1] == {"Ref": "AWS::NoValue"}
        and retention[0][2].get("Prefix") == "media/"
        and retention[0][2].get("ExpirationInDays") == {"Ref": "MessageRetentionDays"},
        f"MediaBucket: the media/ rule does not follow MessageRetentionDays: {retention}",
    )
    check(sam["Conditions"]["KeepsMessagesForever"] == {"Fn::Equals": [{"Ref": "MessageRetentionDays"}, 0]},
          f"KeepsMessagesForever is {sam['Conditions'].get('KeepsMessagesForever')}")
    policy = sam["Resources"]["MediaBucketPolicy"]["Properties"]
    check(policy["Bucket"] == {"Ref": "MediaBucket"}, f"MediaBucketPolicy is on {policy['Bucket']}")
    check(any(st.get("Effect") == "Deny" and st.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
              for st in policy["PolicyDocument"]["Statement"]), f"MediaBucketPolicy: no TLS-only statement")

    url = created["MediaQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    timeout = int(sam["Resources"]["MediaFunction"]["Properties"]["Timeout"])
    check(int(attributes.get("VisibilityTimeout", 0)) >= 6 * timeout,
          f"MediaQueue: visibility timeout {attributes.get('VisibilityTimeout')} s, not 6 x {timeout} s")
    redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
    dlq_arn = sqs.get_queue_attributes(QueueUrl=created["MediaDeadLetterQueue"], AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    check(redrive.get("deadLetterTargetArn") == dlq_arn, f"MediaQueue: redrive policy {redrive}")
    mappings = lambda_.list_event_source_mappings(FunctionName=created["MediaFunction"])["EventSourceMappings"]
    mapping = next((m for m in mappings if m["EventSourceArn"] == attributes["QueueArn"]), {})
    check(mapping.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
          f"MediaEvents: {mapping or 'no event source mapping on MediaQueue'}")
    for name in ("WebhookTelegramFunction", "ApiFunction", "MediaFunction", "AutoReplyFunction"):
        env = lambda_.get_function(FunctionName=created[name])["Configuration"]["Environment"]["Variables"]
        check(env.get("MEDIA_BUCKET") == bucket and env.get("MEDIA_QUEUE_URL") == url,
              f"{name}: MEDIA_BUCKET {env.get('MEDIA_BUCKET')}, MEDIA_QUEUE_URL {env.get('MEDIA_QUEUE_URL')}")
    print("moto-stack: media bucket (AES256 on moto; in the template: no public access, uploads/ 1 day, media/ "
          "with MessageRetentionDays, TLS only) and media queue drained by MediaFunction")


def check_logs(session, created, sam_functions):
    logs = session.client("logs")
    groups = {
        g["logGroupName"]: g
        for page in logs.get_paginator("describe_log_groups").paginate()
        for g in page["logGroups"]
    }
    for name, resource in sam_functions.items():
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        group = f"/aws/lambda/{STACK}-{binary}"
        if check(group in groups, f"{name}: no log group {group}"):
            check(
                groups[group].get("retentionInDays") == LOG_RETENTION_DAYS,
                f"{group}: retention {groups[group].get('retentionInDays')}",
            )
    access = f"/aws/apigateway/{STACK}-http-access"
    check(access in groups and groups[access].get("retentionInDays") == LOG_RETENTION_DAYS, f"no {access}")
    filters = logs.describe_metric_filters()["metricFilters"]
    webhooks = sorted(r["Metadata"]["BuildProperties"]["Binary"] for r in sam_functions.values()
                      if r["Metadata"]["BuildProperties"]["Binary"].startswith("webhook-"))
    filtered = sorted(f["logGroupName"].removeprefix(f"/aws/lambda/{STACK}-") for f in filters
                      if f["metricTransformations"][0]["metricName"] == "IngestFailures")
    check(filtered == webhooks, f"ingest-failure filters on {filtered}, not on every webhook {webhooks}")
    for f in filters:
        check(f["filterPattern"] == '{ $.level = "ERROR" }', f"{f['filterName']}: pattern {f['filterPattern']}")
    print(f"moto-stack: {len(sam_functions) + 1} log groups kept {LOG_RETENTION_DAYS} days, "
          f"{len(filters)} ingest-failure metric filters")


def check_alarms(session, created, sam_functions, topic):
    cloudwatch = session.client("cloudwatch")
    alarms = {
        a["AlarmName"]: a
        for page in cloudwatch.get_paginator("describe_alarms").paginate()
        for a in page["MetricAlarms"]
    }
    expected = {
        f"{STACK}-scheduled-jobs-dlq-not-empty",
        f"{STACK}-table-throttled-requests",
        f"{STACK}-table-system-errors",
        f"{STACK}-http-api-5xx",
        f"{STACK}-ingest-failures",
        f"{STACK}-mailbox-poll-dlq-not-empty",
        f"{STACK}-mailbox-poll-lag",
        f"{STACK}-media-dlq-not-empty",
    }
    for name, resource in sam_functions.items():
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        for metric in ("errors", "throttles"):
            alarm_name = f"{STACK}-{binary}-{metric}"
            expected.add(alarm_name)
            alarm = alarms.get(alarm_name)
            if alarm:
                dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
                check(
                    dimensions == {"FunctionName": created[name]},
                    f"{alarm_name}: on {dimensions}, not function {created[name]}",
                )
    check(not expected - set(alarms), f"alarms missing: {sorted(expected - set(alarms))}")
    check(not set(alarms) - expected, f"alarms not expected: {sorted(set(alarms) - expected)}")
    for name in expected & set(alarms):
        alarm = alarms[name]
        check(alarm.get("AlarmActions") == [topic], f"{name}: alarm actions {alarm.get('AlarmActions')}")
        check(alarm.get("OKActions") == [topic], f"{name}: OK actions {alarm.get('OKActions')}")
    dlq = alarms.get(f"{STACK}-scheduled-jobs-dlq-not-empty", {})
    queue_name = created["ScheduledJobsDeadLetterQueue"].rsplit("/", 1)[1]
    check(
        {d["Name"]: d["Value"] for d in dlq.get("Dimensions", [])} == {"QueueName": queue_name},
        f"dead-letter alarm on {dlq.get('Dimensions')}, not queue {queue_name}",
    )
    for alarm_name, queue, metric in (
        ("mailbox-poll-dlq-not-empty", "MailboxPollDeadLetterQueue", "ApproximateNumberOfMessagesVisible"),
        ("mailbox-poll-lag", "MailboxPollQueue", "ApproximateAgeOfOldestMessage"),
    ):
        alarm = alarms.get(f"{STACK}-{alarm_name}", {})
        queue_name = created[queue].rsplit("/", 1)[1]
        check(
            {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])} == {"QueueName": queue_name}
            and alarm.get("MetricName") == metric,
            f"{alarm_name}: {alarm.get('MetricName')} on {alarm.get('Dimensions')}, not {metric} of {queue_name}",
        )
    for metric in ("throttled-requests", "system-errors"):
        table_alarm = alarms.get(f"{STACK}-table-{metric}", {})
        tables = {
            d["Value"]
            for q in table_alarm.get("Metrics", [])
            for d in q.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])
            if d["Name"] == "TableName"
        }
        check(tables == {created["OmnichatTable"]}, f"table alarm {metric} on tables {tables}")
    print(f"moto-stack: {len(expected)} alarms, each notifying {topic.rsplit(':', 1)[1]} on ALARM and OK")


def check_roles(session, created, cfn):
    """The functions' inline policies: secrets only under the stack's channel/, chatbot/ or platform/ names, the
    webhooks without Query or the indexes, SQS only on the mailbox poll queue (the e-mail poller), the media
    queue (the media function; SendMessage alone for the functions that ingest) or, to send failed runs, the
    scheduled jobs' dead-letter queue. Prints every grant (the table of the template's
    comments)."""
    iam = session.client("iam")
    sqs = session.client("sqs")
    queue_arn = {
        name: sqs.get_queue_attributes(QueueUrl=created[name], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for name in ("MailboxPollQueue", "ScheduledJobsDeadLetterQueue", "MediaQueue")
    }
    mailbox_queue_actions = set()
    media_queue_actions = set()
    live_grants = set()
    # Ingest hands a message's file fetches to the media queue: every function that ingests may send there.
    ingesting = {"EmailPollerFunction", "WebhookTelegramFunction", "WebhookVkFunction", "WebhookViberFunction",
                 "WebhookWhatsappFunction", "WebhookAvitoFunction"}
    secret_prefix = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:omnichat/{STACK}/"
    print("moto-stack: grants per function (inline policies of the roles moto created):")
    for name, function in sorted(functions_of(cfn).items()):
        role_logical = function["Properties"]["Role"]["Fn::GetAtt"][0]
        role = created[role_logical]
        grants = []
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            if isinstance(document, str):
                # moto keeps a policy a stack created as the Python repr of its dict, not as JSON.
                document = ast.literal_eval(document) if document.startswith("{'") else json.loads(document)
            for statement in document["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                grants.append((statement.get("Sid", "?"), actions, resources))
                for resource in resources:
                    check(resource != "*", f"{name}: {actions} on every resource")
                    if any(a.startswith("secretsmanager:") for a in actions):
                        scope = resource.removeprefix(secret_prefix)
                        check(
                            resource.startswith(secret_prefix)
                            and (scope in ("channel/*", "chatbot/*") or scope.startswith("platform/")),
                            f"{name}: secrets grant on {resource}",
                        )
                    if any(a.startswith("sqs:") for a in actions):
                        if resource == queue_arn["MailboxPollQueue"] and name == "EmailPollerFunction":
                            mailbox_queue_actions.update(actions)
                        elif resource == queue_arn["MediaQueue"] and name == "MediaFunction":
                            media_queue_actions.update(actions)
                        elif resource == queue_arn["MediaQueue"] and name in ingesting:
                            check(actions == ["sqs:SendMessage"], f"{name}: {actions} on the media queue")
                        else:
                            check(
                                resource == queue_arn["ScheduledJobsDeadLetterQueue"] and actions == ["sqs:SendMessage"],
                                f"{name}: {actions} on {resource}",
                            )
                if any(a.startswith("execute-api:") for a in actions):
                    check(
                        name == "LiveFunction" and actions == ["execute-api:ManageConnections"]
                        and resources == ["arn:aws:execute-api:us-east-1:123456789012:dropped-LiveApi/live/POST/@connections/*"],
                        f"{name}: {actions} on {resources}",
                    )
                    live_grants.add("ManageConnections")
                if name == "LiveFunction" and any(a.startswith("dynamodb:") for a in actions):
                    check(sorted(actions) == ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
                          and len(resources) == 2 and resources[1].endswith("/index/gsi1"),
                          f"LiveFunction: {actions} on {resources}")
                    live_grants.add("TableItems")
                if name == "LiveFunction":
                    # (sqs:SendMessage on the dead-letter queue is checked with the others' above.)
                    check(not any(a.split(":")[0] in ("secretsmanager", "s3", "events") for a in actions),
                          f"LiveFunction: {actions}")
                if name.startswith("Webhook"):
                    check("dynamodb:Query" not in actions, f"{name}: a webhook may Query")
                    check(
                        not any("/index/" in r for r in resources),
                        f"{name}: a webhook may read an index",
                    )
        for sid, actions, resources in grants:
            short = [r.replace(secret_prefix, "secret:omnichat/<stack>/").split(":table/")[-1] for r in resources]
            print(f"  {name:28} {sid:20} {', '.join(a.split(':')[1] for a in actions)}  on  {', '.join(short)}")
    check(live_grants == {"ManageConnections", "TableItems"}, f"LiveFunction's grants: {sorted(live_grants)}")
    # The dispatch sends and reads the depth; the event source mapping receives and deletes with the role.
    expected = {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"}
    check(
        mailbox_queue_actions == expected,
        f"EmailPollerFunction on MailboxPollQueue: {sorted(mailbox_queue_actions)}, not {sorted(expected)}",
    )
    # The sweep sends again; the event source mapping receives and deletes with the role.
    check(
        media_queue_actions == expected,
        f"MediaFunction on MediaQueue: {sorted(media_queue_actions)}, not {sorted(expected)}",
    )


if __name__ == "__main__":
    main()
