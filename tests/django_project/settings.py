"""The test project's settings: Django's defaults plus sessionware in place of Django's sessions."""

from __future__ import annotations

import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

SETTINGS = {
    "DEBUG": False,
    "SECRET_KEY": "a-django-test-secret-that-is-long-enough-for-the-warning",
    "ALLOWED_HOSTS": ["*"],
    "ROOT_URLCONF": "tests.django_project.urls",
    "INSTALLED_APPS": [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.messages",
        "django.contrib.sessions",  # for `clearsessions`: it calls SESSION_ENGINE's store
        "sessionware.integrations.django",
    ],
    "MIDDLEWARE": [
        "sessionware.integrations.django.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    "SESSION_ENGINE": "sessionware.integrations.django",
    "MESSAGE_STORAGE": "django.contrib.messages.storage.session.SessionStorage",
    "CSRF_USE_SESSIONS": True,
    "DATABASES": {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(Path(tempfile.mkdtemp()) / "db.sqlite3"),
        }
    },
    "TEMPLATES": [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [str(HERE / "templates")],
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ],
    "USE_TZ": True,
    "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
    "LOGIN_REDIRECT_URL": "/whoami",
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
}
