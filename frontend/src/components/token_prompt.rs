//! Asks for the relay's token when the relay answers 401 (or refused the one kept). The token is
//! kept for this tab's session ([`crate::auth`]) and the page starts over with it.

use yew::prelude::*;

use crate::hooks::AuthNeeded;
use crate::web;

#[derive(Properties, PartialEq)]
pub struct TokenPromptProps {
    pub need: AuthNeeded,
}

#[component]
pub fn TokenPrompt(props: &TokenPromptProps) -> Html {
    let input = use_node_ref();
    let onsubmit = {
        let input = input.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if let Some(el) = input.cast::<web_sys::HtmlInputElement>() {
                crate::auth::set_token(&el.value());
                // Every viewer, <img> and probe starts over with the token: simplest is the
                // page itself.
                let _ = web::window().location().reload();
            }
        })
    };
    let (state, text) = match props.need {
        AuthNeeded::Missing => ("missing", "This relay needs a token to show its streams."),
        AuthNeeded::Refused => (
            "refused",
            "The relay refused these credentials. Enter a token; if the relay uses a user name \
             and password instead, the browser keeps the ones it was given until it restarts \
             (or open the page in a private window to be asked again).",
        ),
    };
    html! {
        <form class="token-prompt" data-auth-prompt={state} {onsubmit}>
            <p>{ text }</p>
            <label>
                { "Token " }
                <input ref={input} type="password" name="token" autocomplete="current-password"
                    required=true />
            </label>
            <button type="submit">{ "Open" }</button>
            <p class="hint">{ "Kept for this tab until it closes; sent to this relay only." }</p>
        </form>
    }
}
