// Production sign-in: Firebase Authentication in the browser (email/password or Google).
// The ID token is exchanged at POST /auth/session for the app's own session cookie;
// Firebase keeps nothing in the browser afterwards (in-memory persistence, then signOut).
// The SDK is the pinned bundle this site serves (tools/firebase-sdk), never a CDN's copy.
import {
  GoogleAuthProvider,
  browserPopupRedirectResolver,
  connectAuthEmulator,
  createUserWithEmailAndPassword,
  inMemoryPersistence,
  initializeApp,
  initializeAuth,
  signInWithEmailAndPassword,
  signInWithPopup,
  signOut,
} from "../vendor/firebase.js";

const root = document.getElementById("firebase-signin");
const errorBox = root.querySelector("[data-signin-error]");
const emailForm = root.querySelector("[data-email-form]");
const buttons = root.querySelectorAll("button");
const MESSAGES = {
  "auth/invalid-credential": "That email and password don't match an account.",
  "auth/wrong-password": "That email and password don't match an account.",
  "auth/user-not-found": "That email and password don't match an account.",
  "auth/email-already-in-use": "An account with this email exists already; sign in instead.",
  "auth/weak-password": "Choose a password of at least 6 characters.",
  "auth/invalid-email": "Enter a valid email address.",
  "auth/too-many-requests": "Too many attempts. Wait a moment and try again.",
  "auth/network-request-failed": "We couldn't reach the sign-in service. Check your connection.",
};
const IGNORED = ["auth/popup-closed-by-user", "auth/cancelled-popup-request"];

// initializeAuth with in-memory persistence: nothing of Firebase's is stored in the browser.
const auth = initializeAuth(
  initializeApp({
    apiKey: root.dataset.apiKey,
    authDomain: root.dataset.authDomain,
    projectId: root.dataset.projectId,
  }),
  { persistence: inMemoryPersistence, popupRedirectResolver: browserPopupRedirectResolver },
);
// Set only outside production, when the server itself verifies against the Auth emulator.
if (root.dataset.authEmulator) {
  connectAuthEmulator(auth, root.dataset.authEmulator, { disableWarnings: true });
}

function setBusy(on) {
  buttons.forEach((button) => { button.disabled = on; });
}

function showError(text) {
  window.TokenStore.showMessage(errorBox, { text });
}

async function finish(credential) {
  const idToken = await credential.user.getIdToken();
  const result = await window.TokenStore.request("POST", "/auth/session", { id_token: idToken });
  await signOut(auth);
  if (result.status === 200) {
    window.location.assign(root.dataset.next);
    return true;
  }
  showError(window.TokenStore.describe(result).text);
  return false;
}

async function attempt(signIn) {
  window.TokenStore.hideMessage(errorBox);
  setBusy(true);
  try {
    if (await finish(await signIn())) return;
  } catch (error) {
    if (!IGNORED.includes(error.code)) {
      showError(MESSAGES[error.code] || "Sign-in failed. Please try again.");
    }
  }
  setBusy(false);
}

emailForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const email = emailForm.elements.email.value.trim();
  const password = emailForm.elements.password.value;
  const signUp = event.submitter && event.submitter.dataset.action === "signup";
  const method = signUp ? createUserWithEmailAndPassword : signInWithEmailAndPassword;
  attempt(() => method(auth, email, password));
});

root.querySelector("[data-google]").addEventListener("click", () => {
  attempt(() => signInWithPopup(auth, new GoogleAuthProvider()));
});

setBusy(false);
