"""CloudFormation support for resource types moto 5.2.1's services have but its CloudFormation lacks.

Loaded into the moto server by infra/moto/with-moto.sh when OMNICHAT_MOTO_PLUGINS names this file (as
infra/aws/moto-stack.sh does). Each class below is a moto CloudFormationModel, so moto's own stack engine
resolves the properties (Ref, GetAtt, Sub, If, conditions, order) and the resource is created through the
same backend call the service's API uses: an alarm made by a stack is then read back with DescribeAlarms.
What a real service would refuse and moto's backend lets through is checked here (a metric filter on a log
group that does not exist, an invoke config of a function that does not exist).
"""

from typing import Any

from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table
from moto.events.models import EventBus
from moto.logs.models import logs_backends

# moto 5.2.1 answers Ref of an AWS::Events::EventBus with its model object, where CloudFormation answers the
# bus's name (what an EventBridgeRule's EventBusName gets).
if not hasattr(EventBus, "physical_resource_id"):
    EventBus.physical_resource_id = property(lambda bus: bus.name)  # type: ignore[attr-defined]


class CfnAlarm(CloudFormationModel):
    """AWS::CloudWatch::Alarm: a metric alarm, on one metric or on metric math (Metrics)."""

    # moto files every model under the service named by its module path.
    __module__ = "moto.cloudwatch.omnichat_cfn"

    def __init__(self, name: str):
        self.name = name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnAlarm":
        props = cloudformation_json["Properties"]
        for required in ("ComparisonOperator", "EvaluationPeriods", "Threshold"):
            if required not in props:
                raise ValueError(f"AWS::CloudWatch::Alarm {resource_name}: {required} is required")
        if ("MetricName" in props) == ("Metrics" in props):
            raise ValueError(f"AWS::CloudWatch::Alarm {resource_name}: exactly one of MetricName and Metrics")
        queries = None
        if "Metrics" in props:
            queries = []
            for query in props["Metrics"]:
                stat = None
                if "MetricStat" in query:
                    metric = query["MetricStat"]["Metric"]
                    dimensions = [Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])]
                    stat = MetricStat(
                        metric=Metric(metric["MetricName"], metric["Namespace"], dimensions),
                        period=str(query["MetricStat"]["Period"]),
                        stat=query["MetricStat"]["Stat"],
                        unit=query["MetricStat"].get("Unit"),
                    )
                queries.append(
                    MetricDataQuery(
                        query_id=query["Id"],
                        label=query.get("Label"),
                        period=query.get("Period"),
                        return_data=query.get("ReturnData"),
                        expression=query.get("Expression"),
                        metric_stat=stat,
                    )
                )
        cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            metric_data_queries=queries,
            comparison_operator=props["ComparisonOperator"],
            evaluation_periods=int(props["EvaluationPeriods"]),
            period=props.get("Period"),
            threshold=float(props["Threshold"]),
            statistic=props.get("Statistic"),
            description=props.get("AlarmDescription"),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in props.get("Dimensions", [])],
            alarm_actions=props.get("AlarmActions", []),
            ok_actions=props.get("OKActions", []),
            treat_missing_data=props.get("TreatMissingData"),
        )
        return cls(resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.name])


class CfnMetricFilter(CloudFormationModel):
    """AWS::Logs::MetricFilter on an existing log group."""

    __module__ = "moto.logs.omnichat_cfn"

    def __init__(self, name: str, log_group: str):
        self.name = name
        self.log_group = log_group

    @staticmethod
    def cloudformation_name_type() -> str:
        return "FilterName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Logs::MetricFilter"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnMetricFilter":
        props = cloudformation_json["Properties"]
        backend = logs_backends[account_id][region_name]
        group = props["LogGroupName"]
        if group not in backend.groups:
            raise ValueError(f"AWS::Logs::MetricFilter {resource_name}: no log group {group}")
        transformations = [
            {
                "metricName": t["MetricName"],
                "metricNamespace": t["MetricNamespace"],
                "metricValue": t["MetricValue"],
                **({"defaultValue": float(t["DefaultValue"])} if "DefaultValue" in t else {}),
            }
            for t in props["MetricTransformations"]
        ]
        backend.put_metric_filter(resource_name, props["FilterPattern"], group, transformations)
        return cls(resource_name, group)

    def delete(self, account_id: str, region_name: str) -> None:
        logs_backends[account_id][region_name].delete_metric_filter(self.name, self.log_group)


class CfnEventInvokeConfig(CloudFormationModel):
    """AWS::Lambda::EventInvokeConfig: retries and the on-failure destination of asynchronous invocations."""

    __module__ = "moto.awslambda.omnichat_cfn"

    def __init__(self, function_name: str):
        self.function_name = function_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::EventInvokeConfig"

    @property
    def physical_resource_id(self) -> str:
        return self.function_name

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnEventInvokeConfig":
        props = dict(cloudformation_json["Properties"])
        function_name = props.pop("FunctionName")
        props.pop("Qualifier", None)
        # get_function raises for a function that does not exist, as Lambda does.
        lambda_backends[account_id][region_name].put_function_event_invoke_config(function_name, props)
        return cls(function_name)


MODELS = (CfnAlarm, CfnMetricFilter, CfnEventInvokeConfig)


# Properties moto 5.2.1's CloudFormation drops from resource types it does create. Each wrapper passes what
# moto ignores to the backend call the service's own API uses.
def _extend(model, extra):
    create = model.create_from_cloudformation_json.__func__

    def create_and_extend(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        resource = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        extra(resource, cloudformation_json.get("Properties", {}), account_id, region_name)
        return resource

    model.create_from_cloudformation_json = classmethod(create_and_extend)


def _table_extras(table, props, account_id, region_name):
    backend = dynamodb_backends[account_id][region_name]
    if "TimeToLiveSpecification" in props:
        backend.update_time_to_live(table.name, props["TimeToLiveSpecification"])
    if "PointInTimeRecoverySpecification" in props:
        backend.update_continuous_backups(table.name, props["PointInTimeRecoverySpecification"])


def _function_extras(function, props, account_id, region_name):
    # moto's setter refuses what Lambda refuses (more than one, or neither x86_64 nor arm64).
    function.architectures = props.get("Architectures", ["x86_64"])


_extend(Table, _table_extras)
_extend(LambdaFunction, _function_extras)
