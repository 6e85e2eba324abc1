import pytest
from kubernetes import client

from auscult.cluster import Cluster
from auscult.store import FileStore
from tests.auscult.governed import run_pipeline_by_hand, serve_one_request
from tests.auscult.kube_api import FakeKube, serve


@pytest.fixture(scope="session")
def governed(cohort, tmp_path_factory):
    """One served request and one run of the stages, made once: a test works on its own copy (``copy_of``)."""
    folder = tmp_path_factory.mktemp("governed")
    store = FileStore(folder / "store")
    serve_one_request(store, folder)
    version, prepared = run_pipeline_by_hand(cohort, store, folder / "root")
    return store, folder / "root", version, prepared


@pytest.fixture
def kube():
    """A local server speaking the Kubernetes API calls of a roll-out and of a training job, and a client of it."""
    api = FakeKube()
    server, url = serve(api)
    yield api, Cluster(client.ApiClient(client.Configuration(host=url)), "screening")
    server.shutdown()
