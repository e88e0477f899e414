"""Tasks with explicit names, registered on the project's app."""

from apis import celery


@celery.task(name="get_jenkins_info")
def get_jenkins_info():
    return {"jobs": 3}


@celery.task(name="get_gitlab_info")
def get_gitlab_info(project):
    return {"project": project, "commits": 42}
