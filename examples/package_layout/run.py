"""Producer: send the named tasks without importing them."""

import sys

from apis import celery

jenkins = celery.send_task("get_jenkins_info").get(timeout=10)
gitlab = celery.send_task("get_gitlab_info", args=["demo"]).get(timeout=10)
print("get_jenkins_info ->", jenkins)
print("get_gitlab_info ->", gitlab)

if jenkins != {"jobs": 3} or gitlab != {"project": "demo", "commits": 42}:
    sys.exit("unexpected results")
print("OK")
