from celery_main import app


@app.task
def sub(x, y):
    return x - y
