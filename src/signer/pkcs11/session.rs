//! Modules, tokens and logins: a module is loaded and initialized once per process, a token
//! is chosen by every path attribute of the URI, and the user logs in once, never retrying a
//! PIN the token refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use cryptoki::types::AuthPin;

use super::Pkcs11Error;
use super::uri::{PinSource, Pkcs11Uri, SlotDesc, TokenDesc};
use crate::config::Pkcs11Settings;
use crate::secret::{self, Secret, SecretSource};

/// p11-kit's proxy module, the default (it loads every module registered with p11-kit).
pub(super) const P11_KIT_PROXY: &str = "p11-kit-proxy.so";

/// Directories searched for `module-name` and for the default module.
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib/pkcs11",
    "/usr/local/lib",
    "/usr/lib/softhsm",
    "/usr/lib/x86_64-linux-gnu/softhsm",
    "/usr/local/lib/softhsm",
    "/opt/homebrew/lib",
];

/// Where p11-kit keeps module registrations (`<name>.module` with a `module:` line).
const P11_KIT_MODULE_CONFIG_DIRS: &[&str] = &["/etc/pkcs11/modules", "/usr/share/p11-kit/modules"];

/// A loaded, initialized module.
#[derive(Clone)]
pub(super) struct Module {
    /// The context (cheap to clone).
    pub ctx: Pkcs11,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// `library-manufacturer`, `library-description` and `library-version`.
    pub library: (String, String, (u8, u8)),
}

/// Picks the module: the URI's `module-path`, then its `module-name`, then `--pkcs11-lib`,
/// then p11-kit's proxy.
pub(super) fn module_path(
    uri: &Pkcs11Uri,
    settings: &Pkcs11Settings,
) -> Result<PathBuf, Pkcs11Error> {
    if let Some(p) = &uri.module_path {
        return Ok(p.clone());
    }
    if let Some(name) = &uri.module_name {
        return find_module_by_name(name);
    }
    if let Some(p) = &settings.module {
        return Ok(p.clone());
    }
    find_in_dirs(P11_KIT_PROXY).ok_or_else(|| Pkcs11Error::ModuleNotFound {
        name: P11_KIT_PROXY.into(),
        searched: MODULE_DIRS.iter().map(|d| d.to_string()).collect(),
    })
}

fn find_in_dirs(file: &str) -> Option<PathBuf> {
    MODULE_DIRS
        .iter()
        .map(|d| Path::new(d).join(file))
        .find(|p| p.is_file())
}

/// Finds `module-name=NAME`: a p11-kit registration `NAME.module`, else `NAME`, `NAME.so`,
/// `libNAME.so` in the usual library directories.
fn find_module_by_name(name: &str) -> Result<PathBuf, Pkcs11Error> {
    for dir in P11_KIT_MODULE_CONFIG_DIRS {
        let conf = Path::new(dir).join(format!("{name}.module"));
        let bytes = crate::input::read_file(&conf).ok();
        if let Some(text) = bytes.as_deref().and_then(|b| std::str::from_utf8(b).ok()) {
            let module = text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "module").then(|| v.trim().to_owned())
            });
            if let Some(m) = module {
                let p = PathBuf::from(&m);
                if p.is_absolute() {
                    return Ok(p);
                }
                if let Some(found) = find_in_dirs(&m) {
                    return Ok(found);
                }
            }
        }
    }
    for file in [
        name.to_owned(),
        format!("{name}.so"),
        format!("lib{name}.so"),
    ] {
        if let Some(p) = find_in_dirs(&file) {
            return Ok(p);
        }
    }
    Err(Pkcs11Error::ModuleNotFound {
        name: name.into(),
        searched: P11_KIT_MODULE_CONFIG_DIRS
            .iter()
            .chain(MODULE_DIRS)
            .map(|d| d.to_string())
            .collect(),
    })
}

/// Loads and initializes `path`, once per process: later calls return the same module.
pub(super) fn load(path: &Path) -> Result<Module, Pkcs11Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Module>>> = OnceLock::new();
    let modules = MODULES.get_or_init(|| Mutex::new(HashMap::new()));
    // A poisoned map still holds valid modules: a panic elsewhere cannot corrupt it.
    let mut modules = modules.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = modules.get(path) {
        return Ok(m.clone());
    }
    if !path.exists() {
        return Err(Pkcs11Error::ModuleNotFound {
            name: path.display().to_string(),
            searched: Vec::new(),
        });
    }
    let ctx = Pkcs11::new(path).map_err(|e| Pkcs11Error::ModuleLoad {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(Pkcs11Error::call("C_Initialize", e, path.display())),
    }
    let info = ctx
        .get_library_info()
        .map_err(|e| Pkcs11Error::call("C_GetInfo", e, path.display()))?;
    let v = info.library_version();
    let module = Module {
        ctx,
        path: path.to_owned(),
        library: (
            info.manufacturer_id().to_owned(),
            info.library_description().to_owned(),
            (v.major(), v.minor()),
        ),
    };
    modules.insert(path.to_owned(), module.clone());
    Ok(module)
}

/// A token in a slot, with the information read when it was found.
#[derive(Debug, Clone)]
pub(super) struct FoundToken {
    /// The slot.
    pub slot: Slot,
    /// Its identifying values.
    pub desc: TokenDesc,
    /// The token's flags and limits.
    pub info: TokenInfo,
}

/// Every token that matches the URI's path attributes (token, slot and library ones).
pub(super) fn matching_tokens(
    module: &Module,
    uri: &Pkcs11Uri,
) -> Result<Vec<FoundToken>, Pkcs11Error> {
    let (lib_manuf, lib_desc, lib_version) = &module.library;
    if !uri.matches_library(lib_manuf, lib_desc, *lib_version) {
        return Ok(Vec::new());
    }
    Ok(all_tokens(module, uri.names_slot_info())?
        .into_iter()
        .filter(|t| uri.matches_token(&t.desc))
        .collect())
}

/// Every token present in the module's slots, with each slot's own information when
/// `slot_info` asks for it.
pub(super) fn all_tokens(module: &Module, slot_info: bool) -> Result<Vec<FoundToken>, Pkcs11Error> {
    let where_ = module.path.display();
    let slots = module
        .ctx
        .get_slots_with_token()
        .map_err(|e| Pkcs11Error::call("C_GetSlotList", e, &where_))?;
    let mut found = Vec::new();
    for slot in slots {
        let slot_desc = if slot_info {
            let i = module
                .ctx
                .get_slot_info(slot)
                .map_err(|e| Pkcs11Error::call("C_GetSlotInfo", e, &where_))?;
            Some(SlotDesc {
                description: i.slot_description().to_owned(),
                manufacturer: i.manufacturer_id().to_owned(),
            })
        } else {
            None
        };
        let info = match module.ctx.get_token_info(slot) {
            Ok(i) => i,
            // A token pulled out between the two calls is simply not there.
            Err(CkError::Pkcs11(RvError::TokenNotPresent | RvError::TokenNotRecognized, _)) => {
                continue;
            }
            Err(e) => return Err(Pkcs11Error::call("C_GetTokenInfo", e, &where_)),
        };
        // Uninitialized tokens (SoftHSM's free slot) hold nothing to use.
        if !info.token_initialized() {
            continue;
        }
        found.push(FoundToken {
            slot,
            desc: TokenDesc {
                slot_id: slot.id(),
                label: info.label().to_owned(),
                manufacturer: info.manufacturer_id().to_owned(),
                model: info.model().to_owned(),
                serial: info.serial_number().to_owned(),
                slot: slot_desc,
            },
            info,
        });
    }
    Ok(found)
}

/// The one token the URI selects: none is "token absent", several is ambiguous.
pub(super) fn select_token(module: &Module, uri: &Pkcs11Uri) -> Result<FoundToken, Pkcs11Error> {
    let mut tokens = matching_tokens(module, uri)?;
    match tokens.len() {
        1 => Ok(tokens.remove(0)),
        0 => Err(Pkcs11Error::TokenAbsent {
            uri: uri.to_string(),
            module: module.path.display().to_string(),
            available: all_tokens(module, false)
                .unwrap_or_default()
                .iter()
                .map(|t| t.desc.to_string())
                .collect(),
        }),
        _ => Err(Pkcs11Error::AmbiguousToken {
            uri: uri.to_string(),
            candidates: tokens.iter().map(|t| t.desc.to_string()).collect(),
        }),
    }
}

/// Opens a read-only (or read-write) session on the token.
pub(super) fn open_session(
    module: &Module,
    token: &FoundToken,
    rw: bool,
) -> Result<Session, Pkcs11Error> {
    let r = if rw {
        module.ctx.open_rw_session(token.slot)
    } else {
        module.ctx.open_ro_session(token.slot)
    };
    r.map_err(|e| Pkcs11Error::call("C_OpenSession", e, &token.desc))
}

/// The user PIN, from the URI's `pin-source`, then its `pin-value` (with a warning), then
/// the configured sources (PIN file, environment, terminal prompt).
pub(super) fn user_pin(
    uri: &Pkcs11Uri,
    settings: &Pkcs11Settings,
    token: &TokenDesc,
) -> Result<Secret, Pkcs11Error> {
    let what = format!("the user PIN of token \"{}\"", token.label);
    let pin = if let Some(PinSource::File(path)) = &uri.pin_source {
        secret::read_secret_file(path, &what).map_err(Pkcs11Error::Pin)?
    } else if let Some(pin) = &uri.pin_value {
        crate::diag!(
            "ra-signer: warning: the PIN is given as pin-value in the PKCS#11 URI, where other users can \
             read it (process list, shell history); prefer pin-source=file:… or --pkcs11-pin-file"
        );
        pin.clone()
    } else {
        secret::resolve(&settings.pin_sources, &what).map_err(Pkcs11Error::Pin)?
    };
    // Refused before C_Login: an empty PIN is never right and would cost a retry.
    if pin.expose().is_empty() {
        return Err(Pkcs11Error::Pin(secret::SecretError::Empty { what }));
    }
    Ok(pin)
}

/// The context-specific PIN of a `CKA_ALWAYS_AUTHENTICATE` key: the user PIN with
/// `--reuse-pin`, else the configured context PIN sources.
pub(super) fn context_pin(
    sources: &[SecretSource],
    key_label: &str,
) -> Result<Secret, Pkcs11Error> {
    let what = format!("the context-specific PIN of key \"{key_label}\"");
    secret::resolve(sources, &what).map_err(Pkcs11Error::ContextPin)
}

/// Logs the user in on `session` unless the session already is, once. `pin` is called only
/// when a PIN is needed; a PIN the token refuses is never tried again.
pub(super) fn login(
    module: &Module,
    session: &Session,
    token: &FoundToken,
    pin: &mut dyn FnMut() -> Result<Secret, Pkcs11Error>,
) -> Result<Option<Secret>, Pkcs11Error> {
    if !token.info.login_required() {
        return Ok(None);
    }
    if let Ok(info) = session.get_session_info()
        && matches!(
            info.session_state(),
            SessionState::RoUser | SessionState::RwUser | SessionState::RwSecurityOfficer
        )
    {
        return Ok(None);
    }
    if token.info.user_pin_locked() {
        return Err(Pkcs11Error::PinLocked {
            token: Box::new(token.desc.clone()),
        });
    }
    let (result, pin) = if token.info.protected_authentication_path() {
        // A PIN pad or biometric reader asks the person itself.
        (session.login(UserType::User, None), None)
    } else {
        let pin = pin()?;
        let auth = AuthPin::from(pin.expose().to_owned());
        (session.login(UserType::User, Some(&auth)), Some(pin))
    };
    match result {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(pin),
        Err(e) => Err(login_error(module, token, e, false)),
    }
}

/// Classifies a failed `C_Login`, reading the token's PIN flags again for the hint.
pub(super) fn login_error(
    module: &Module,
    token: &FoundToken,
    e: CkError,
    context: bool,
) -> Pkcs11Error {
    let flags = module.ctx.get_token_info(token.slot).ok();
    match e {
        CkError::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange, _) => {
            Pkcs11Error::PinIncorrect {
                token: Box::new(token.desc.clone()),
                context,
                count_low: flags.as_ref().is_some_and(TokenInfo::user_pin_count_low),
                final_try: flags.as_ref().is_some_and(TokenInfo::user_pin_final_try),
            }
        }
        CkError::Pkcs11(RvError::PinLocked, _) => Pkcs11Error::PinLocked {
            token: Box::new(token.desc.clone()),
        },
        CkError::Pkcs11(RvError::PinExpired, _) => Pkcs11Error::PinExpired {
            token: Box::new(token.desc.clone()),
        },
        CkError::Pkcs11(RvError::TokenNotPresent | RvError::DeviceRemoved, _) => {
            Pkcs11Error::TokenAbsent {
                uri: token.desc.uri().to_string(),
                module: module.path.display().to_string(),
                available: Vec::new(),
            }
        }
        e => Pkcs11Error::call("C_Login", e, &token.desc),
    }
}

/// The mechanism list of the token, for choosing how to sign.
pub(super) fn mechanisms(
    module: &Module,
    token: &FoundToken,
) -> Result<Vec<cryptoki::mechanism::MechanismType>, Pkcs11Error> {
    module
        .ctx
        .get_mechanism_list(token.slot)
        .map_err(|e| Pkcs11Error::call("C_GetMechanismList", e, &token.desc))
}
