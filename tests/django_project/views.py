from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import aget_user, alogin, alogout, logout
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from sessionware import Device


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous")


async def awhoami(request: HttpRequest) -> HttpResponse:
    user = await aget_user(request)
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous")


async def alogin_view(request: HttpRequest) -> HttpResponse:
    user = await User.objects.aget(username=request.GET["user"])
    await alogin(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse(request.session.session_key)


def session_login(request: HttpRequest) -> HttpResponse:
    request.session.login("ann")  # type: ignore[attr-defined]
    return HttpResponse(str(request.session.authenticated_at is not None))  # type: ignore[attr-defined]


async def asession_login(request: HttpRequest) -> HttpResponse:
    await request.session.alogin("ann")  # type: ignore[attr-defined]
    return HttpResponse(str(request.session.authenticated_at is not None))  # type: ignore[attr-defined]


async def alogout_view(request: HttpRequest) -> HttpResponse:
    await alogout(request)
    return HttpResponseRedirect("/whoami")


def logout_then_count(request: HttpRequest) -> HttpResponse:
    logout(request)
    return counter(request)


def counter(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse(str(request.session["n"]))


async def acounter(request: HttpRequest) -> HttpResponse:
    value = await request.session.aget("n", 0) + 1
    await request.session.aset("n", value)
    return HttpResponse(str(value))


def message_set(request: HttpRequest) -> HttpResponse:
    messages.info(request, "saved in the session")
    return HttpResponse("ok")


def message_get(request: HttpRequest) -> HttpResponse:
    return HttpResponse(" | ".join(str(message) for message in messages.get_messages(request)))


def form(request: HttpRequest) -> HttpResponse:
    return render(request, "form.html")


def post(request: HttpRequest) -> HttpResponse:
    return HttpResponse("posted " + request.POST.get("value", ""))


def boom(request: HttpRequest) -> HttpResponse:
    request.session["half"] = "done"
    raise RuntimeError("the view failed")


def expiry(request: HttpRequest) -> HttpResponse:
    request.session.set_expiry(0)
    request.session["browser"] = True
    return HttpResponse(str(request.session.get_expire_at_browser_close()))


def devices(request: HttpRequest) -> HttpResponse:
    return HttpResponse(" ".join(sorted(request.session.user_sessions())))


def sign_out_others(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.destroy_other_sessions()))


async def asign_out_others(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(await request.session.adestroy_other_sessions()))


def _device_rows(devices: list[Device]) -> HttpResponse:
    rows = [[d.handle, d.current, d.address, d.user_agent] for d in devices]
    return HttpResponse(json.dumps(rows), content_type="application/json")


def device_list(request: HttpRequest) -> HttpResponse:
    return _device_rows(request.session.devices())


async def adevice_list(request: HttpRequest) -> HttpResponse:
    return _device_rows(await request.session.adevices())


def end_device(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.end_device(request.GET["handle"])))


async def aend_device(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(await request.session.aend_device(request.GET["handle"])))


def session_user(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        json.dumps({"user": request.session.get("uid")}), content_type="application/json"
    )


def session_logout(request: HttpRequest) -> HttpResponse:
    request.session.logout()  # type: ignore[attr-defined]
    return HttpResponse("bye")
