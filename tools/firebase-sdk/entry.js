// What static/js/signin-firebase.js uses from the Firebase JS SDK, and nothing more:
// esbuild keeps only these (and what they need) in static/vendor/firebase.js.
export { initializeApp } from "firebase/app";
export {
  GoogleAuthProvider,
  browserPopupRedirectResolver,
  connectAuthEmulator,
  createUserWithEmailAndPassword,
  inMemoryPersistence,
  initializeAuth,
  signInWithEmailAndPassword,
  signInWithPopup,
  signOut,
} from "firebase/auth";
