"""Texts the service itself says (not the script): handoff, emergency, after hours, errors."""

from __future__ import annotations

NOTICES: dict[str, dict[str, str]] = {
    "emergency": {
        "zh-CN": "如果你现在有危险，请马上打 110（报警）或 120（急救）。能离开的话，先去安全的地方，"
        "或者到有大人的地方去。",
        "zh-TW": "如果你現在有危險，請馬上打 110（報警）或 120（急救）。能離開的話，先去安全的地方，"
        "或者到有大人的地方去。",
        "en": "If you are in danger right now, call 110 (police) or 120 (ambulance) now. If you "
        "can, go somewhere safe or near a grown-up you trust.",
    },
    "handoff_requested": {
        "zh-CN": "谢谢你告诉我。我正在请一位老师来和你聊，马上就来。你现在排在第 {position} 位。"
        "你可以继续写，老师会看到你写的每一句话。",
        "zh-TW": "謝謝你告訴我。我正在請一位老師來和你聊，馬上就來。你現在排在第 {position} 位。"
        "你可以繼續寫，老師會看到你寫的每一句話。",
        "en": "Thank you for telling me. I am asking a person to talk with you; they are coming. "
        "You are number {position} in line. You can keep writing: they will read everything.",
    },
    "waiting_hold": {
        "zh-CN": "我收到了。老师马上就来，你现在排在第 {position} 位。我一直在这里。",
        "zh-TW": "我收到了。老師馬上就來，你現在排在第 {position} 位。我一直在這裡。",
        "en": "I got your message. A person is coming; you are number {position} in line. "
        "I am here with you.",
    },
    "after_hours": {
        "zh-CN": "现在老师暂时不在线，但你说的话都记下了，老师一上线就会先看你的。"
        "有危险请打 110 或 120；想找人说话可以打 12355 青少年服务热线。",
        "zh-TW": "現在老師暫時不在線，但你說的話都記下了，老師一上線就會先看你的。"
        "有危險請打 110 或 120；想找人說話可以打 12355 青少年服務熱線。",
        "en": "No one is online right this minute, but everything you wrote is saved and a "
        "person will read it first when they come. If you are in danger call 110 or 120; "
        "to talk to someone now, call the 12355 youth hotline.",
    },
    "reassure": {
        "zh-CN": "我还在这里陪着你。老师快来了。如果有危险，请打 110 或 120。",
        "zh-TW": "我還在這裡陪著你。老師快來了。如果有危險，請打 110 或 120。",
        "en": "I am still here with you. A person is coming soon. If you are in danger, "
        "call 110 or 120.",
    },
    "volunteer_joined": {
        "zh-CN": "一位老师来了，现在是真人在和你聊天。",
        "zh-TW": "一位老師來了，現在是真人在和你聊天。",
        "en": "A person has joined. You are now talking with a real person.",
    },
    "holder_lost": {
        "zh-CN": "刚才和你聊天的老师那边断线了。我正在请另一位老师来，你不用重新说一遍。"
        "有危险请打 110 或 120。",
        "zh-TW": "剛才和你聊天的老師那邊斷線了。我正在請另一位老師來，你不用重新說一遍。"
        "有危險請打 110 或 120。",
        "en": "The person you were talking with lost their connection. I am asking another "
        "person to come; you will not have to tell it all again. If you are in danger, call "
        "110 or 120.",
    },
    "back_to_bot": {
        "zh-CN": "老师先离开一下。我还在，你可以继续和我说。",
        "zh-TW": "老師先離開一下。我還在，你可以繼續和我說。",
        "en": "The person has stepped away. I am still here; you can keep talking to me.",
    },
    "closed": {
        "zh-CN": "这次聊天结束了。谢谢你的勇气。需要的时候随时回来，也可以打 12355。"
        "有危险请打 110 或 120。",
        "zh-TW": "這次聊天結束了。謝謝你的勇氣。需要的時候隨時回來，也可以打 12355。"
        "有危險請打 110 或 120。",
        "en": "This chat has ended. Thank you for being brave. Come back any time, or call "
        "12355. If you are in danger, call 110 or 120.",
    },
    "fallback": {
        "zh-CN": "抱歉，我这边出了点问题，但你的话已经保存了，会有人看到。"
        "有危险请打 110 或 120，也可以打 12355。",
        "zh-TW": "抱歉，我這邊出了點問題，但你的話已經保存了，會有人看到。"
        "有危險請打 110 或 120，也可以打 12355。",
        "en": "Sorry, something went wrong on my side, but your message is saved and a person "
        "will see it. If you are in danger call 110 or 120, or call 12355.",
    },
    "lead_found": {
        "zh-CN": "找到了你之前的记录（{code}）。谢谢你回来。我请一位老师来接着帮你。",
        "zh-TW": "找到了你之前的記錄（{code}）。謝謝你回來。我請一位老師來接著幫你。",
        "en": "I found your earlier report ({code}). Thank you for coming back. I am asking a "
        "person to pick it up with you.",
    },
    "image_received": {
        "zh-CN": "[发送了一张图片]",
        "zh-TW": "[傳送了一張圖片]",
        "en": "[an image was sent]",
    },
}

LANGS = ("zh-CN", "zh-TW", "en")


def notice(key: str, lang: str, **values: object) -> str:
    """The notice in lang (Simplified Chinese if lang is unknown), with values filled in."""
    texts = NOTICES[key]
    text = texts.get(lang) or texts["zh-CN"]
    return text.format(**values) if values else text
