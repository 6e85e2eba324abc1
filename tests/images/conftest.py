import pytest

from tests.images.engine import Built, DockerApi, ImageBuild

_build: ImageBuild | None = None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the images as soon as a test that needs them is selected."""
    global _build
    if any("built" in getattr(item, "fixturenames", ()) for item in session.items):
        _build = ImageBuild(session.config._tmp_path_factory.mktemp("images"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _build is not None:
        _build.stop()


@pytest.fixture(scope="session")
def built() -> Built:
    assert _build is not None, "the image build did not start"
    return _build.wait()


@pytest.fixture(scope="session")
def docker_api(built, tmp_path_factory):
    api = DockerApi(built, tmp_path_factory.mktemp("docker-api"))
    yield api
    api.close()
