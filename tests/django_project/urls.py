from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="login.html")),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/whoami")),
    path("whoami", views.whoami),
    path("awhoami", views.awhoami),
    path("alogin", views.alogin_view),
    path("alogout", views.alogout_view),
    path("session-login", views.session_login),
    path("asession-login", views.asession_login),
    path("session-user", views.session_user),
    path("session-logout", views.session_logout),
    path("logout-then-count", views.logout_then_count),
    path("counter", views.counter),
    path("acounter", views.acounter),
    path("message-set", views.message_set),
    path("message-get", views.message_get),
    path("form", views.form),
    path("post", views.post),
    path("boom", views.boom),
    path("expiry", views.expiry),
    path("devices", views.devices),
    path("sign-out-others", views.sign_out_others),
    path("asign-out-others", views.asign_out_others),
    path("device-list", views.device_list),
    path("adevice-list", views.adevice_list),
    path("end-device", views.end_device),
    path("aend-device", views.aend_device),
]
